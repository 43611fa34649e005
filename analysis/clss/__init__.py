"""Checkpointed Local Slope Spectroscopy (paper Appendix B.1, Algorithm 2) on stored probe trajectories.

Input is what the probes produced, whatever produced them: for each population N a reward array
(R seeds, T steps), optionally a locality metric (distance from the checkpoint) of the same shape,
and optionally the measured effective step and noise of each step (:mod:`analysis.clss.kappa`).
:func:`fit` runs Algorithm 2 at one step size alpha against the nominal kappa = sigma^2 / N or the
measured kappa_eff and returns d_eff = 4 S / alpha (Eq. 27) with a confidence interval, or a FAIL
with its reason; :func:`scan` loops over step sizes; :func:`read_hdf5` loads SCHEMA.md's layout.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .fitting import bootstrap, pool_stderr, slope_fit
from .relaxation import horizon_relaxations, relaxation_steps
from .verdict import describe, verdict

KAPPA_SOURCES = ("auto", "nominal", "measured")


@dataclass(frozen=True)
class Probe:
    """Probe trajectories at one noise level: rewards (R, T), optional locality metric (R, T), and
    optional measured effective step alpha_eff and noise kappa_eff of the update producing each column."""

    population: int
    sigma: float
    rewards: np.ndarray
    distance: np.ndarray | None = None
    alpha_eff: np.ndarray | None = None
    kappa_eff: np.ndarray | None = None

    @property
    def kappa(self):
        """Nominal noise kappa = sigma^2 / N (exact for Eq. 14)."""
        return self.sigma**2 / self.population

    @property
    def measured(self):
        """Whether the probe carries the measured alpha_eff and kappa_eff."""
        return self.alpha_eff is not None and self.kappa_eff is not None


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
    drift_z: float = 3.0  # ... that is also beyond this many standard errors
    min_p: float = 1e-3  # smallest chi^2 p-value of the linear fit
    max_gain_spread: float = 0.25  # measured kappa: largest max/min - 1 of alpha_eff over the fitted N
    level: float = 0.95  # confidence level of the d_eff interval
    kappa: str = "auto"  # noise axis: "nominal" sigma^2/N, "measured" kappa_eff, "auto": measured when present

    def __post_init__(self):
        """Reject thresholds Algorithm 2 cannot run with (ValueError naming the field)."""
        checks = [("window", self.window is None or self.window >= 1, ">= 1"),
                  ("r_min", self.r_min >= 2, ">= 2 (a plateau needs a standard error)"),
                  ("n_fit", self.n_fit is None or self.n_fit >= 2, ">= 2"),
                  ("min_populations", self.min_populations >= 2, ">= 2 (a slope needs two plateaus)"),
                  ("min_accept", 0.0 <= self.min_accept <= 1.0, "in [0, 1]"),
                  ("level", 0.0 < self.level < 1.0, "in (0, 1)"),
                  ("kappa", self.kappa in KAPPA_SOURCES, f"one of {KAPPA_SOURCES}")]
        for name, ok, need in checks:
            if not ok:
                raise ValueError(f"{name}: must be {need}, got {getattr(self, name)!r}")


@dataclass
class Plateau:
    """Step (1) for one population: seed accounting, plateau J_inf(N) and mean tail drift J1 - J0, with errors."""

    population: int
    kappa: float
    alpha_eff: float
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
    relaxation: float = np.nan  # integrated relaxation time of the seed-mean reward, steps (relaxation.py)
    stderr_pooled: bool = False


@dataclass
class Result:
    """Algorithm 2's output at one alpha: d_eff with its interval, or ``ok=False`` with ``reason``."""

    ok: bool
    reason: str
    alpha: float
    kappa_source: str = "nominal"
    alpha_eff: float = np.nan
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
    horizon_relaxations: float = np.nan  # T over the longest resolved relaxation time
    fitted: list = field(default_factory=list)
    pooled: list = field(default_factory=list)
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


def _noise_axis(probe, keep, window, measured):
    """(kappa, alpha_eff) of a population: nominal (sigma^2 / N, NaN), or tail-window means of the measured ones."""
    if not measured:
        return float(probe.kappa), np.nan
    if not keep.any():
        return np.nan, np.nan
    gain = np.asarray(probe.alpha_eff, dtype=float)[keep, -window:]
    kappa = np.asarray(probe.kappa_eff, dtype=float)[keep, -window:]
    alpha_eff = float(np.nanmean(gain))
    return float(np.nanmean(kappa * gain**2) / alpha_eff**2), alpha_eff  # mean step noise / mean gain^2


def screen(probe, settings, measured=False):
    """Step (1) of Algorithm 2 for one population: reject non-local, unsettled and incomplete seeds."""
    rewards = np.asarray(probe.rewards, dtype=float)
    window = settings.window or rewards.shape[1] // 4
    j1, j0 = tail_means(rewards, window)
    incomplete = ~np.isfinite(j1) | ~np.isfinite(j0)
    non_local = np.zeros(len(rewards), dtype=bool)
    if settings.tau_loc is not None and probe.distance is not None:
        non_local = np.fmax.reduce(np.asarray(probe.distance, dtype=float), axis=1) > settings.tau_loc
    unsettled = np.zeros(len(rewards), dtype=bool)
    if settings.tau_stat is not None:
        unsettled = ~(np.abs(j1 - j0) <= settings.tau_stat)
    keep = ~(incomplete | non_local | unsettled)
    n = int(keep.sum())
    kappa, alpha_eff = _noise_axis(probe, keep, window, measured)
    return Plateau(
        population=int(probe.population), kappa=kappa, alpha_eff=alpha_eff, seeds=len(rewards),
        non_local=int((non_local & ~incomplete).sum()), unsettled=int((unsettled & ~non_local & ~incomplete).sum()),
        incomplete=int(incomplete.sum()), valid_seeds=n,
        value=float(j1[keep].mean()) if n else np.nan,
        stderr=float(j1[keep].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
        drift=float((j1 - j0)[keep].mean()) if n else np.nan,
        drift_se=float((j1 - j0)[keep].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
        valid=n >= settings.r_min, relaxation=relaxation_steps(rewards[keep], window))


def _short_horizon(probes, settings):
    """FAIL reason when a probe set is too short for two tail windows, else None."""
    for p in probes:
        steps = np.shape(p.rewards)[1]
        window = settings.window or steps // 4
        if 2 * window > steps or window < 1:
            return (f"N={p.population}: probe horizon T={steps} is too short for two tail windows of w={window} "
                    f"steps (need 1 <= w and 2 w <= T; the default w is T // 4, so T >= 4)")
    return None


def _kappa_source(probes, settings):
    """Whether the fit uses measured kappa_eff; returns (measured, FAIL reason or None)."""
    present = all(p.measured for p in probes)
    if settings.kappa == "measured" and not present:
        missing = sorted(p.population for p in probes if not p.measured)
        return False, f"kappa=measured but N={missing} carry no member rewards to measure kappa_eff from"
    return settings.kappa == "measured" or (settings.kappa == "auto" and present), None


def _line(used, settings):
    """Weighted fits of the gap and of the tail drift against kappa; returns the fit's fields or a FAIL reason."""
    kappa = np.array([p.kappa for p in used])
    counts = [p.valid_seeds for p in used]
    labels = [p.population for p in used]
    values = np.array([p.value for p in used])
    drift = -np.array([p.drift for p in used])
    stderr, pooled, reason = pool_stderr([p.stderr for p in used], counts, labels, values)
    drift_stderr, _, drift_reason = pool_stderr([p.drift_se for p in used], counts, labels, values)
    if reason or (drift_reason and np.any(drift != 0)):  # tails that never move have a known drift, 0
        return reason or f"tail drift J0 - J1: {drift_reason}"
    for p, se in zip(used, stderr):
        p.stderr_pooled, p.stderr = p.population in pooled, float(se)
    slope, intercept, _, chi2 = slope_fit(kappa, values[-1] - values, stderr)
    drift_slope, _, drift_se, _ = (0.0, 0.0, 0.0, 0.0) if drift_reason else slope_fit(kappa, drift, drift_stderr)
    half, chi2_null, chi2_draws = bootstrap(kappa, stderr, counts, slope, intercept, settings.level)
    dof = len(used) - 2
    p_value = float((1 + np.sum(chi2_draws >= chi2)) / (1 + chi2_draws.size)) if dof > 0 else 1.0
    half *= np.sqrt(max(1.0, chi2 / chi2_null)) if dof > 0 else 1.0
    return dict(slope=slope, intercept=intercept, half=half, chi2=chi2, dof=dof, p_value=p_value,
                drift_slope=drift_slope, drift_slope_se=drift_se, pooled=pooled)


def fit(probes, alpha, settings=Settings()):
    """Algorithm 2 at one alpha: screen seeds, plateau per N, slope of J_ref - J_inf(N) vs kappa, d_eff = 4 S / alpha.

    With measured noise, kappa is kappa_eff and alpha the mean measured alpha_eff (Eq. 14's form of
    the ES step, SCHEMA.md). Tail settling is tested on the slope too: the mean drift J0 - J1 per
    population is fitted against kappa, and the fit FAILs when that slope exceeds max_drift * S and
    drift_z standard errors.
    """
    measured, reason = _kappa_source(probes, settings)
    source = "measured" if measured else "nominal"
    reason = reason or _short_horizon(probes, settings)
    if reason:
        return Result(False, reason, alpha, kappa_source=source)
    plateaus = sorted((screen(p, settings, measured) for p in probes), key=lambda p: -p.kappa)
    valid = [p for p in plateaus if p.valid]
    acceptance = sum(p.valid_seeds for p in plateaus) / max(sum(p.seeds for p in plateaus), 1)
    horizon = horizon_relaxations(np.shape(probes[0].rewards)[1], [p.relaxation for p in plateaus])
    common = dict(kappa_source=source, acceptance=acceptance, horizon_relaxations=horizon, plateaus=plateaus)
    if len(valid) < settings.min_populations:
        reason = (f"only {len(valid)} valid populations (need {settings.min_populations} with >= "
                  f"{settings.r_min} valid seeds): {describe(plateaus)}")
        return Result(False, reason, alpha, **common)
    used = valid[-settings.n_fit:] if settings.n_fit else valid  # smallest kappa = largest N
    if measured and not np.all(np.isfinite([(p.kappa, p.alpha_eff) for p in used])):
        reason = ("kappa_eff not measurable: a fitted population's members all had the same reward at every "
                  "update of its tail (the shaped rewards are 0 and the step has no gain)")
        return Result(False, reason, alpha, fitted=[p.population for p in used], **common)
    step = float(np.mean([p.alpha_eff for p in used])) if measured else alpha
    for p in used if measured else ():  # refer each kappa_eff to the common step: gap = kappa_eff alpha_eff d_eff / 4
        p.kappa *= p.alpha_eff / step
    line = _line(used, settings)
    if isinstance(line, str):
        return Result(False, line, alpha, fitted=[p.population for p in used], **common)
    slope, half = line.pop("slope"), line.pop("half")
    reason = verdict(plateaus, used, acceptance, slope, half, line["drift_slope"], line["drift_slope_se"],
                      line["p_value"], settings)
    return Result(reason == "ok", reason, alpha, alpha_eff=step if measured else np.nan,
                  d_eff=4.0 * slope / step, d_eff_ci=(4.0 * (slope - half) / step, 4.0 * (slope + half) / step),
                  slope=slope, slope_se=half / stats.norm.ppf(0.5 + settings.level / 2),
                  fitted=[p.population for p in used],
                  **line, **common)


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


from .store import read_hdf5  # noqa: E402  (store builds Probe objects)
