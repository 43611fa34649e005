"""Stochastic Lanczos quadrature (SLQ) for curvature spectra: paper Appendix B.2, Algorithm 3, Eqs. (28)-(29).

Only numpy/scipy: Lanczos with full reorthogonalisation on any symmetric matvec, Gauss quadrature from the
tridiagonal matrix, Hutchinson probes, tr f(A) with a standard error, a Gaussian-broadened spectral density
and the spectrum summaries of Figure 17.  The raw per-probe tridiagonal coefficients are all that is stored
(see `analysis.slq.store`); nodes, weights, densities and summaries are re-derived from them without matvecs.

Spectral measure.  Probe j (vector z_j, Lanczos nodes theta_jk, weights w_jk, sum_k w_jk = 1) contributes
W_jk = ||z_j||^2 w_jk / s to the measure  mu = sum_jk W_jk delta(t - theta_jk),  which estimates the eigenvalue
counting measure sum_i delta(t - lambda_i) (total mass n): by Eqs. (28)-(29), sum_jk W_jk f(theta_jk) is exactly
the SLQ estimate of tr f(A).  Every summary is a function of such trace functionals (see `summaries`), so with
the exact eigen-decomposition (nodes lambda_i, weights 1) each one equals its textbook formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import LinearOperator, aslinearoperator

PROBE_DISTS = ("rademacher", "gaussian")
BREAKDOWN_TOL = 1e-10  # Lanczos stops when beta_j <= BREAKDOWN_TOL * (largest |alpha|, beta so far): invariant subspace


def as_matvec(a):
    """v -> A v for a dense array, a sparse matrix, a scipy LinearOperator or a plain callable."""
    if callable(a) and not isinstance(a, LinearOperator):
        return a
    return aslinearoperator(a).matvec


def lanczos(matvec, v0, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m-step Lanczos from v0 with full reorthogonalisation in float64 (Alg. 3): diagonal alpha, off-diagonal beta.

    Stops early (len(alpha) = k < m) when the Krylov space becomes invariant; T_k is then exact for v0.
    """
    apply = as_matvec(matvec)
    v0 = np.asarray(v0, dtype=np.float64)
    m = min(m, v0.size)
    q = np.zeros((m, v0.size))
    q[0] = v0 / np.linalg.norm(v0)
    alpha, beta = np.zeros(m), np.zeros(max(m - 1, 0))
    for j in range(m):
        w = np.asarray(apply(q[j]), dtype=np.float64).reshape(-1)
        alpha[j] = q[j] @ w
        for _ in range(2):  # classical Gram-Schmidt twice against all previous vectors ("twice is enough")
            w -= q[: j + 1].T @ (q[: j + 1] @ w)
        if j == m - 1:
            break
        beta[j] = np.linalg.norm(w)
        if beta[j] <= BREAKDOWN_TOL * max(np.abs(alpha[: j + 1]).max(), beta[:j].max(initial=0.0)):
            return alpha[: j + 1], beta[:j]
        q[j + 1] = w / beta[j]
    return alpha, beta


def gauss_quadrature(alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    """Gauss nodes theta_k (Ritz values) and weights w_k = (V_1k)^2 of the tridiagonal T (Alg. 3); sum w_k = 1."""
    nodes, vectors = eigh_tridiagonal(np.asarray(alpha, np.float64), np.asarray(beta, np.float64))
    return nodes, vectors[0] ** 2


def draw_probe(n: int, seed: int, j: int, dist: str = "rademacher") -> np.ndarray:
    """Hutchinson probe z_j in R^n with E[z z^T] = I (Alg. 3): i.i.d. Rademacher signs or standard normals.

    Probe j comes from its own stream SeedSequence([seed, j]), so a job can draw only the probes it owns."""
    rng = np.random.default_rng([seed, j])
    if dist == "rademacher":
        return rng.choice([-1.0, 1.0], size=n)
    if dist == "gaussian":
        return rng.standard_normal(n)
    raise ValueError(f"probe dist must be one of {PROBE_DISTS}, got {dist!r}")


def hutchinson(tau) -> tuple[float, float]:
    """Mean of the per-probe estimates tau_j and its standard error sqrt(Var/s), Var with ddof=1 (Eq. 29)."""
    tau = np.asarray(tau, np.float64)
    se = np.sqrt(tau.var(ddof=1) / tau.size) if tau.size > 1 else float("nan")
    return float(tau.mean()), float(se)


def density(nodes, weights, grid, width: float) -> np.ndarray:
    """Spectral density on grid: each node broadened to a Gaussian of standard deviation width, unit total mass.

    rho(t) = sum_k W_k N(t; theta_k, width^2) / sum_k W_k; its mean is that of the nodes and its variance
    exceeds theirs by width^2.
    """
    theta, w = np.ravel(nodes), np.ravel(weights)
    z = (np.asarray(grid, np.float64)[:, None] - theta[None, :]) / width
    return np.exp(-0.5 * z**2) @ w / (w.sum() * width * np.sqrt(2 * np.pi))


def _abs_log_abs(t: np.ndarray) -> np.ndarray:
    """|t| log |t|, with the limit 0 at t = 0."""
    a = np.abs(t)
    return a * np.log(np.where(a > 0, a, 1.0))


def summaries(nodes, weights) -> dict[str, float]:
    """Figure 17 summaries of the measure sum_k W_k delta(t - theta_k) estimating sum_i delta(t - lambda_i).

    With T_f = sum_k W_k f(theta_k) (the SLQ estimate of tr f(A), Eq. 29):
      trace = T_t;  lambda_min/max = min/max theta_k (Ritz values lie inside [lambda_min, lambda_max]);
      negative_mass = T_{1[t<0]} / T_1, the fraction of eigenvalues below zero (Gauss nodes resolve this step
        only to about the weight of the node nearest zero, O(1/m));
      participation_ratio = T_|t|^2 / T_{t^2}, i.e. (sum |lambda|)^2 / sum lambda^2;
      effective_rank = exp(H) with H = log T_|t| - T_{|t| log|t|} / T_|t|, which is the entropy
        -sum_i p_i log p_i of p_i = |lambda_i| / sum |lambda| rewritten as trace functionals.
    """
    theta, w = np.ravel(nodes), np.ravel(weights)
    tr_abs = w @ np.abs(theta)
    return {
        "trace": float(w @ theta),
        "lambda_min": float(theta.min()),
        "lambda_max": float(theta.max()),
        "negative_mass": float(w[theta < 0].sum() / w.sum()),
        "participation_ratio": float(tr_abs**2 / (w @ theta**2)),
        "effective_rank": float(np.exp(np.log(tr_abs) - (w @ _abs_log_abs(theta)) / tr_abs)),
    }


@dataclass(frozen=True, eq=False)
class SLQResult:
    """Per-probe Lanczos coefficients (what `store` writes) and the quadrature derived from them (Alg. 3)."""

    alpha: tuple[np.ndarray, ...]  # probe j: diagonal of T_j, length k_j <= m (shorter after a breakdown)
    beta: tuple[np.ndarray, ...]  # probe j: off-diagonal of T_j, length k_j - 1
    probe_norm2: np.ndarray  # ||z_j||^2, scales the quadrature in Eq. (28)
    n: int
    probe_dist: str
    seed: int
    operator: str

    @cached_property
    def quadrature(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """(nodes, weights) of each probe's Gauss quadrature."""
        return tuple(gauss_quadrature(a, b) for a, b in zip(self.alpha, self.beta))

    def measure(self) -> tuple[np.ndarray, np.ndarray]:
        """Pooled nodes theta_jk and weights W_jk = ||z_j||^2 w_jk / s, estimating sum_i delta(t - lambda_i)."""
        s = len(self.quadrature)
        nodes = np.concatenate([t for t, _ in self.quadrature])
        weights = np.concatenate([z2 * w / s for z2, (_, w) in zip(self.probe_norm2, self.quadrature)])
        return nodes, weights

    def trace_f(self, f) -> tuple[float, float]:
        """SLQ estimate of tr f(A) and its standard error over probes (Eqs. 28-29); f is vectorised."""
        return hutchinson([z2 * (w @ f(t)) for z2, (t, w) in zip(self.probe_norm2, self.quadrature)])

    def summaries(self) -> dict[str, float]:
        """`summaries` of the pooled measure plus trace_se, the standard error of the trace (Eq. 29)."""
        return {**summaries(*self.measure()), "trace_se": self.trace_f(lambda t: t)[1]}


def slq(matvec, n: int, probes: int = 64, steps: int = 80, seed: int = 0, dist: str = "rademacher",
        operator: str = "matvec") -> SLQResult:
    """SLQ of a symmetric n x n operator (Alg. 3): `probes` Hutchinson probes, `steps` Lanczos steps each."""
    runs, norm2 = [], []
    for j in range(probes):
        z = draw_probe(n, seed, j, dist)
        runs.append(lanczos(matvec, z, steps))
        norm2.append(z @ z)
    return SLQResult(alpha=tuple(a for a, _ in runs), beta=tuple(b for _, b in runs),
                     probe_norm2=np.array(norm2), n=n, probe_dist=dist, seed=seed, operator=operator)
