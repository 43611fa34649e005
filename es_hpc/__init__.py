"""es_hpc: evolution-strategies fine-tuning of causal LMs as an HPC batch application."""
__version__ = "0.1.0"
