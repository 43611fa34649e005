"""The job runtime: a job's assembly on a rank, the run wrapper around its process group, the rank-0 sink for
output and the HDF5 file, provenance, phase timing, signals, checkpoints and atomic files."""
