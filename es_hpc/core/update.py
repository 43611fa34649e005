"""The ES update's per-member coefficients (paper Eq. 1 / Algorithm 1)."""
from __future__ import annotations

import numpy as np

from .shaping import shape


def coefficients(rewards: np.ndarray, signs: np.ndarray, *, sigma: float, alpha: float,
                 shaping: str, update_form: str) -> np.ndarray:
    """c_k with theta += sum_k c_k eps_k: c_k = alpha/(N sigma) w_k s_k (Eq. 1, update_form "eq1")
    or alpha/N w_k s_k (Qiu et al. 2025's form, "qiu"); s_k = -1 for the negative antithetic twin."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if not np.all(np.isfinite(rewards)):
        bad = int(np.flatnonzero(~np.isfinite(rewards))[0])
        raise FloatingPointError(f"reward of member {bad} is {rewards[bad]}: rewards must be finite")
    n = len(rewards)
    step = alpha / (n * sigma) if update_form == "eq1" else alpha / n
    return step * shape(rewards, shaping) * signs.astype(np.float64)
