"""Checkpointed Local Slope Spectroscopy (paper Appendix B.1, Algorithm 2) on stored probe trajectories.

Input is what the probes produced, whatever produced them: for each population N (noise
kappa = sigma^2 / N) a reward array (R seeds, T steps) and optionally a locality metric (distance
from the checkpoint) of the same shape. :func:`fit` runs Algorithm 2 at one step size alpha and
returns d_eff = 4 S / alpha (Eq. 27) with a confidence interval, or a FAIL with its reason;
:func:`scan` loops over step sizes; :func:`read_hdf5` loads the layout documented in SCHEMA.md.
"""

from dataclasses import asdict, dataclass, field

import h5py
import numpy as np
from scipy import stats

from analysis.hdf5 import open_file


@dataclass(frozen=True)
class Probe:
    """Probe trajectories at one noise level: rewards (R, T) and an optional locality metric (R, T)."""

    population: int
    sigma: float
    rewards: np.ndarray
    distance: np.ndarray | None = None

    @property
    def kappa(self):
        """Effective noise kappa = sigma^2 / N."""
        return self.sigma**2 / self.population


@dataclass(frozen=True)
class Settings:
    """Algorithm 2's thresholds (documented in SCHEMA.md)."""

    window: int | None = None  # tail window w; None: T // 4
    tau_loc: float | None = None  # reject a seed whose locality metric ever exceeds this; None: no check
    tau_stat: float | None = None  # reject a seed with |J1 - J0| above this; None: no per-seed check
    r_min: int = 4  # valid seeds a population needs
    n_fit: int | None = None  # fit the n_fit smallest-kappa valid populations; None: all
    min_populations: int = 3  # valid populations the fit needs
    min_accept: float = 0.5  # smallest overall fraction of accepted seeds
    max_drift: float = 0.05  # largest tail-drift slope, as a fraction of S ...
    drift_z: float = 2.0  # ... that is also beyond this many standard errors
    min_p: float = 1e-3  # smallest chi^2 p-value of the linear fit
    level: float = 0.95  # confidence level of the d_eff interval

    def __post_init__(self):
        """Reject thresholds Algorithm 2 cannot run with (ValueError naming the field)."""
        checks = [("window", self.window is None or self.window >= 1, ">= 1"),
                  ("r_min", self.r_min >= 2, ">= 2 (a plateau needs a standard error)"),
                  ("n_fit", self.n_fit is None or self.n_fit >= 2, ">= 2"),
                  ("min_populations", self.min_populations >= 2, ">= 2 (a slope needs two plateaus)"),
                  ("min_accept", 0.0 <= self.min_accept <= 1.0, "in [0, 1]"),
                  ("level", 0.0 < self.level < 1.0, "in (0, 1)")]
        for name, ok, need in checks:
            if not ok:
                raise ValueError(f"{name}: must be {need}, got {getattr(self, name)!r}")


@dataclass
class Plateau:
    """Step (1) for one population: seed accounting, plateau J_inf(N) and mean tail drift J1 - J0, with errors."""

    population: int
    kappa: float
    seeds: int
    non_local: int
    unsettled: int
    incomplete: int
    valid_seeds: int
    value: float
    stderr: float
    drift: float
    drift_se: float
    valid: bool


@dataclass
class Result:
    """Algorithm 2's output at one alpha: d_eff with its interval, or ``ok=False`` with ``reason``."""

    ok: bool
    reason: str
    alpha: float
    d_eff: float = np.nan
    d_eff_ci: tuple = (np.nan, np.nan)
    slope: float = np.nan
    slope_se: float = np.nan
    intercept: float = np.nan
    drift_slope: float = np.nan
    drift_slope_se: float = np.nan
    chi2: float = np.nan
    dof: int = 0
    p_value: float = np.nan
    acceptance: float = np.nan
    fitted: list = field(default_factory=list)
    plateaus: list = field(default_factory=list)

    def to_dict(self):
        """JSON-ready dictionary (NaN becomes None)."""
        return json_ready(asdict(self))


def json_ready(value):
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def tail_means(rewards, window):
    """Per-seed means of the last window (J1) and of the window before it (J0), Algorithm 2's tail test."""
    steps = rewards.shape[1]
    if 2 * window > steps or window < 1:
        raise ValueError(f"tail window {window} needs 1 <= 2*window <= T = {steps}")
    return rewards[:, steps - window:].mean(axis=1), rewards[:, steps - 2 * window:steps - window].mean(axis=1)


def screen(probe, settings):
    """Step (1) of Algorithm 2 for one population: reject non-local, unsettled and incomplete seeds."""
    rewards = np.asarray(probe.rewards, dtype=float)
    j1, j0 = tail_means(rewards, settings.window or rewards.shape[1] // 4)
    incomplete = ~np.isfinite(j1) | ~np.isfinite(j0)
    non_local = np.zeros(len(rewards), dtype=bool)
    if settings.tau_loc is not None and probe.distance is not None:
        non_local = np.fmax.reduce(np.asarray(probe.distance, dtype=float), axis=1) > settings.tau_loc
    unsettled = np.zeros(len(rewards), dtype=bool)
    if settings.tau_stat is not None:
        unsettled = ~(np.abs(j1 - j0) <= settings.tau_stat)
    keep = ~(incomplete | non_local | unsettled)
    n = int(keep.sum())
    return Plateau(
        population=int(probe.population), kappa=float(probe.kappa), seeds=len(rewards),
        non_local=int((non_local & ~incomplete).sum()), unsettled=int((unsettled & ~non_local & ~incomplete).sum()),
        incomplete=int(incomplete.sum()), valid_seeds=n,
        value=float(j1[keep].mean()) if n else np.nan,
        stderr=float(j1[keep].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
        drift=float((j1 - j0)[keep].mean()) if n else np.nan,
        drift_se=float((j1 - j0)[keep].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
        valid=n >= settings.r_min)


def slope_fit(kappa, gap, stderr):
    """Weighted least squares gap = S kappa + b; returns S, b, se(S), chi^2 (weights 1 / stderr^2)."""
    weights = 1.0 / stderr**2 if np.all(stderr > 0) else np.ones_like(gap)
    design = np.column_stack([kappa, np.ones_like(kappa)])
    normal = design.T @ (weights[:, None] * design)
    (slope, intercept) = np.linalg.solve(normal, design.T @ (weights * gap))
    chi2 = float(np.sum(weights * (gap - slope * kappa - intercept) ** 2))
    return slope, intercept, float(np.sqrt(np.linalg.inv(normal)[0, 0])), chi2


def _describe(plateaus):
    """One-line seed accounting per population, for FAIL reasons."""
    return "; ".join(f"N={p.population}: {p.valid_seeds}/{p.seeds} valid ({p.non_local} non-local, "
                     f"{p.unsettled} unsettled, {p.incomplete} incomplete)" for p in plateaus)


def _short_horizon(probes, settings):
    """FAIL reason when a probe set is too short for two tail windows, else None."""
    for p in probes:
        steps = np.shape(p.rewards)[1]
        window = settings.window or steps // 4
        if 2 * window > steps or window < 1:
            return (f"N={p.population}: probe horizon T={steps} is too short for two tail windows of w={window} "
                    f"steps (need 1 <= w and 2 w <= T; the default w is T // 4, so T >= 4)")
    return None


def _verdict(plateaus, acceptance, slope, half, drift_slope, drift_se, p_value, settings):
    """Algorithm 2's acceptance checks; returns "ok" or the reason for FAIL."""
    if acceptance < settings.min_accept:
        return f"acceptance rate {acceptance:.2f} < {settings.min_accept}: {_describe(plateaus)}"
    if abs(drift_slope) > max(settings.max_drift * abs(slope), settings.drift_z * drift_se):
        return (f"tails not settled: the gap slope still moves by {drift_slope / slope:.1%} per tail window "
                f"(+- {drift_se / abs(slope):.1%}; allowed {settings.max_drift:.0%})")
    if slope <= 0:
        return f"plateau gap does not grow with kappa (slope {slope:.3g})"
    if slope - half <= 0:
        return (f"slope not resolved: S = {slope:.3g} +- {half:.3g} ({settings.level:.0%} interval) includes 0; "
                f"more seeds, larger N or longer tails are needed")
    if p_value < settings.min_p:
        return f"plateau gap not linear in kappa (p = {p_value:.2g} < {settings.min_p})"
    return "ok"


def fit(probes, alpha, settings=Settings()):
    """Algorithm 2 at one alpha: screen seeds, plateau per N, slope of J_ref - J_inf(N) vs kappa, d_eff = 4 S / alpha.

    Tail settling is tested on the slope too: the mean drift J0 - J1 per population is fitted against
    kappa, and the fit FAILs when that slope exceeds max_drift * S and drift_z standard errors.
    """
    short = _short_horizon(probes, settings)
    if short:
        return Result(False, short, alpha)
    plateaus = sorted((screen(p, settings) for p in probes), key=lambda p: -p.kappa)
    valid = [p for p in plateaus if p.valid]
    acceptance = sum(p.valid_seeds for p in plateaus) / max(sum(p.seeds for p in plateaus), 1)
    if len(valid) < settings.min_populations:
        reason = (f"only {len(valid)} valid populations (need {settings.min_populations} with >= "
                  f"{settings.r_min} valid seeds): {_describe(plateaus)}")
        return Result(False, reason, alpha, acceptance=acceptance, plateaus=plateaus)
    used = valid[-settings.n_fit:] if settings.n_fit else valid  # smallest kappa = largest N
    kappa = np.array([p.kappa for p in used])
    values = np.array([p.value for p in used])
    slope, intercept, se, chi2 = slope_fit(kappa, values[-1] - values, np.array([p.stderr for p in used]))
    drift_slope, _, drift_se, _ = slope_fit(kappa, -np.array([p.drift for p in used]),
                                            np.array([p.drift_se for p in used]))
    dof = len(used) - 2
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    se *= max(1.0, np.sqrt(chi2 / dof)) if dof > 0 else 1.0
    half = stats.norm.ppf(0.5 + settings.level / 2) * se
    reason = _verdict(plateaus, acceptance, slope, half, drift_slope, drift_se, p_value, settings)
    return Result(reason == "ok", reason, alpha,
                  d_eff=4.0 * slope / alpha, d_eff_ci=(4.0 * (slope - half) / alpha, 4.0 * (slope + half) / alpha),
                  slope=float(slope), slope_se=float(se), intercept=float(intercept), drift_slope=float(drift_slope),
                  drift_slope_se=drift_se, chi2=chi2, dof=dof, p_value=p_value, acceptance=acceptance,
                  fitted=[p.population for p in used], plateaus=plateaus)


def scan(probes_by_alpha, settings=Settings()):
    """Algorithm 2's outer loop: the first alpha (ascending) that passes, else FAIL listing every alpha's reason."""
    results = [fit(probes, alpha, settings) for alpha, probes in sorted(probes_by_alpha.items())]
    passed = [r for r in results if r.ok]
    if passed:
        return passed[0]
    failed = results[-1]
    if len(results) > 1:
        failed.reason = " | ".join(f"alpha={r.alpha:g}: {r.reason}" for r in results)
    return failed


def read_hdf5(path, group="clss"):
    """Load probes from an HDF5 file laid out as in SCHEMA.md; returns {alpha: [Probe, ...]}."""
    probes = {}
    with open_file(path) as f:
        for node in f[group].values():
            if not isinstance(node, h5py.Group):
                continue
            distance = node["distance"][()] if "distance" in node else None
            probe = Probe(int(node.attrs["population"]), float(node.attrs["sigma"]), node["rewards"][()], distance)
            probes.setdefault(float(node.attrs["alpha"]), []).append(probe)
    return probes
