"""`python -m es_hpc`: the CLI; guarded because engines that spawn worker processes (vLLM) re-import __main__."""
from .cli import run

if __name__ == "__main__":
    run()
