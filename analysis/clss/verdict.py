"""Algorithm 2's acceptance checks (FAIL reasons listed in SCHEMA.md), separate from the fit that feeds them."""

import numpy as np


def describe(plateaus):
    """One-line seed accounting per population, for FAIL reasons."""
    return "; ".join(f"N={p.population}: {p.valid_seeds}/{p.seeds} valid ({p.non_local} non-local, "
                     f"{p.unsettled} unsettled, {p.incomplete} incomplete)" for p in plateaus)


def verdict(plateaus, used, acceptance, slope, half, drift_slope, drift_se, p_value, settings):
    """Algorithm 2's acceptance checks; returns "ok" or the reason for FAIL."""
    if acceptance < settings.min_accept:
        return f"acceptance rate {acceptance:.2f} < {settings.min_accept}: {describe(plateaus)}"
    if abs(drift_slope) > max(settings.max_drift * abs(slope), settings.drift_z * drift_se):
        return (f"tails not settled: the gap slope still moves by {drift_slope / slope:.1%} per tail window "
                f"(+- {drift_se / abs(slope):.1%}; allowed {settings.max_drift:.0%})")
    if slope <= 0:
        return f"plateau gap does not grow with kappa (slope {slope:.3g})"
    if slope - half <= 0:
        return (f"slope not resolved: S = {slope:.3g} +- {half:.3g} ({settings.level:.0%} interval) includes 0; "
                f"more seeds, larger N or longer tails are needed")
    gains = [p.alpha_eff for p in used if np.isfinite(p.alpha_eff)]
    if gains and max(gains) / min(gains) - 1 > settings.max_gain_spread:
        return (f"the measured step alpha_eff varies from {min(gains):.3g} to {max(gains):.3g} across the fitted N "
                f"(more than {settings.max_gain_spread:.0%}; the shaping makes the step depend on the state), so the "
                f"gap is not linear in kappa_eff: fit fewer, larger N (--n-fit)")
    if p_value < settings.min_p:
        return f"plateau gap not linear in kappa (p = {p_value:.2g} < {settings.min_p})"
    return "ok"
