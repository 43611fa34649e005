"""HDF5 reader/writer for the `slq/` group (schema in analysis/slq/SCHEMA.md); the online job writes the same layout."""
from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np

from analysis.slq import SLQResult


def _padded(rows, width: int) -> np.ndarray:
    """Stack variable-length rows into (len(rows), width) float64, NaN after each row's end."""
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def padded_coefficients(result: SLQResult) -> tuple[np.ndarray, np.ndarray]:
    """The stored alpha (S, m) and beta (S, m - 1), m the longest probe's Lanczos length, NaN after each one's end."""
    m = max(len(a) for a in result.alpha)
    return _padded(result.alpha, m), _padded(result.beta, m - 1)


def write_slq(parent: h5py.Group, result: SLQResult, name: str = "slq") -> h5py.Group:
    """Write the per-probe tridiagonal coefficients and probe norms as parent/name (created if absent); nodes and
    weights are derived. The online job declares the same datasets up front (SWMR) and fills them instead."""
    alpha, beta = padded_coefficients(result)
    g = parent.require_group(name)
    g.create_dataset("alpha", data=alpha)
    g.create_dataset("beta", data=beta)
    g.create_dataset("probe_norm2", data=np.asarray(result.probe_norm2, np.float64))
    g.attrs.update(n=np.int64(result.n), probe_dist=result.probe_dist, operator=result.operator,
                   seed=np.int64(result.seed))
    return g


def read_slq(parent: h5py.Group, name: str = "slq") -> SLQResult:
    """Read parent/name back; a probe's Lanczos length is its number of finite alpha entries (NaN padding).
    A running online job's file has no coefficients yet (SCHEMA.md): a ValueError says so."""
    g = parent[name]
    alpha, beta = g["alpha"][()], g["beta"][()]
    lengths = np.isfinite(alpha).sum(axis=1)
    if not lengths.any():
        raise ValueError(f"{parent.file.filename}: no SLQ probe stored yet")
    return SLQResult(alpha=tuple(a[:k] for a, k in zip(alpha, lengths)),
                     beta=tuple(b[: k - 1] for b, k in zip(beta, lengths)),
                     probe_norm2=g["probe_norm2"][()], n=int(g.attrs["n"]), probe_dist=str(g.attrs["probe_dist"]),
                     seed=int(g.attrs["seed"]), operator=str(g.attrs["operator"]))


def read_exact(parent: h5py.Group, name: str = "slq") -> tuple[np.ndarray, np.ndarray] | None:
    """The exact spectrum stored beside a Stein-operator run (`slq/stein/`), as the measure of `summaries`: its M
    eigenvalues with weight 1 each plus the shift with weight n - M; None when the run stored none."""
    if f"{name}/stein/eigenvalues" not in parent:
        return None
    g = parent[f"{name}/stein"]
    eig, n = g["eigenvalues"][()], int(parent[name].attrs["n"])
    return np.append(eig, float(g.attrs["shift"])), np.append(np.ones(eig.size), n - eig.size)


OBJECTIVES = ("reward", "cross_entropy")
KIND_OBJECTIVE = {"hvp": "cross_entropy", "stein": "reward"}  # files written before `objective` existed


def objective(parent: h5py.Group, name: str = "slq") -> str | None:
    """Whose Hessian the stored spectrum is: `slq/@objective`, else implied by `slq/@kind`, else None (unknown)."""
    attrs = parent[name].attrs
    if "objective" in attrs:
        value = str(attrs["objective"])
        if value not in OBJECTIVES:
            raise ValueError(f"{parent.file.filename}: slq/@objective must be one of {OBJECTIVES}, got {value!r}")
        return value
    return KIND_OBJECTIVE.get(str(attrs["kind"])) if "kind" in attrs else None


def as_reward(result: SLQResult) -> SLQResult:
    """The spectrum of -A: tridiagonals T_j -> -T_j (nodes negate, weights keep; they depend on beta^2 only)."""
    return replace(result, alpha=tuple(-a for a in result.alpha), operator=f"-({result.operator})")


def read_null(parent: h5py.Group, name: str = "slq") -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The Stein null (`slq/stein/null_eigenvalues`, (P, M)): per permutation of dR, its exact spectrum as the
    measure of `summaries` (M eigenvalues plus the shift with weight n - M, as `read_exact`); None without it."""
    if f"{name}/stein/null_eigenvalues" not in parent:
        return None
    g = parent[f"{name}/stein"]
    null, n, shift = g["null_eigenvalues"][()], int(parent[name].attrs["n"]), float(g.attrs["shift"])
    weights = np.append(np.ones(null.shape[1]), n - null.shape[1])
    return [(np.append(row, shift), weights) for row in null]
