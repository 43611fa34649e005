"""Landscape instruments run inside jobs: curvature operators of the model for SLQ (Algorithm 3, Appendix G.10)."""
