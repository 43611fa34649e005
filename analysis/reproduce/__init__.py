"""The paper's claims reproduced on the embedded model family: measurements, verdicts, figures and the report
of a `launch/reproduce.sh` run (python -m analysis.reproduce). Reads only the stages' HDF5 files (never torch).
"""
