"""Toy models of the paper's Appendix A and E, numpy only, vectorised over seeds.

- ``closed_forms``: Eqs. 13-27 (mode moments, stationary variance, expected reward, plateau,
  mixture amplitudes and rates, two-mode peak time, d_eff) and the exact moments of ES on Eq. 13.
- ``simulate``: one noisy-ascent core (Eq. 11) with two gradient estimators: Gaussian noise
  (Eq. 14) and Algorithm 1 (Eq. 1).
- ``double_well``: Eq. 38 on the quartic well, hysteresis hop counting, Eyring-Kramers (Eqs. 40-50).
- ``spectroscopy``: CLSS on Eq. 14 or Algorithm 1 probes of a two-block spectrum against Eq. 27.
- ``moments``: the antithetic curvature-moment estimator on a two-block quadratic against exact values.
- ``figures``: Figures 3, 7, 8, 9.  Commands: ``python -m analysis.toy {clss,moments,figures} --help``.
"""
