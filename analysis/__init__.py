"""Offline analysis of es_hpc HDF5 logs (numpy, scipy, h5py, matplotlib; never torch or es_hpc)."""
