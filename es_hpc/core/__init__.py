"""The ES core: seeds, noise, in-place perturbation and the update (paper Algorithm 1).

It depends on torch and numpy only: no transformers, vLLM, MPI or HDF5.
"""
