"""The jobs, one module each: train (Algorithm 1), probe (Appendix G), clss (Algorithm 2, step 1), slq
(Algorithm 3) and bench. Each is a short body over es_hpc.runtime (assembly, run wrapper, sink) and es_hpc.eval."""
