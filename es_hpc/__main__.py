"""`python -m es_hpc`: the CLI; guarded because engines that spawn worker processes (vLLM) re-import __main__."""
import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    if "es_hpc.comm.torch_dist" in sys.modules:
        # The process group is already destroyed and every file closed; skip interpreter finalization, where gloo's
        # worker threads can abort the process ("terminate called without an active exception", seen under srun).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
