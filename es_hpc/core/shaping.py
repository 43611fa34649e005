"""Reward shaping: turn the N raw rewards into the weights w_k of the update."""
from __future__ import annotations

import numpy as np


def zscore(r: np.ndarray) -> np.ndarray:
    """(r - mean) / std as in Qiu et al. (2025); all-equal rewards give zero weights, not NaN."""
    std = r.std()
    return np.zeros_like(r) if std == 0 else (r - r.mean()) / std


def centered_rank(r: np.ndarray) -> np.ndarray:
    """Ranks mapped to [-0.5, 0.5], ties sharing their average rank: robust to reward scale."""
    if len(r) == 1:
        return np.zeros_like(r)
    order = np.argsort(r, kind="stable")
    ranks = np.empty(len(r), dtype=np.float64)
    ranks[order] = np.arange(len(r), dtype=np.float64)
    for value in np.unique(r):
        tied = r == value
        ranks[tied] = ranks[tied].mean()
    return ranks / (len(r) - 1) - 0.5


def raw(r: np.ndarray) -> np.ndarray:
    """The rewards themselves, as in the paper's Eq. 1."""
    return r.astype(np.float64)


SHAPERS = {"zscore": zscore, "centered_rank": centered_rank, "raw": raw}


def shape(rewards: np.ndarray, method: str) -> np.ndarray:
    """Weights w_k (float64) of the N rewards by the named method."""
    return SHAPERS[method](np.asarray(rewards, dtype=np.float64))
