"""Equivalents of the paper's Figures 3, 7, 8 and 9 (``python -m analysis.toy figures --out DIR``)."""

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import clss
from . import closed_forms as cf
from . import double_well as dw
from .simulate import es_runs, ou_runs, ou_states, quadratic_reward, record
from .spectroscopy import default_steps, ou_probes

# Figure 3's spectrum (D=128, d=16, lambda_hi=1, lambda_lo=0.05); step, noise and start are ours.
FIGURE3 = dict(dim=128, stiff=16, lam_hi=1.0, lam_lo=0.05, alpha=0.1, sigma=0.5, x_hi=0.25, x_lo=0.1)
POPULATIONS = (2, 4, 8, 16, 32)


def example(setting=FIGURE3):
    """Spectrum and start of the two-block example: stiff modes far from, flat modes inside their noise floor."""
    lam = cf.two_block_spectrum(setting["dim"], setting["stiff"], setting["lam_hi"], setting["lam_lo"])
    return lam, np.where(lam == setting["lam_hi"], setting["x_hi"], setting["x_lo"])


def example_peak(kappa, setting=FIGURE3):
    """Eq. 25's peak time of the two-block example, amplitudes (Eq. 20) summed per block."""
    lam, x0 = example(setting)
    amp, gamma = cf.amplitudes(lam, setting["alpha"], kappa, x0), cf.rates(lam, setting["alpha"])
    hi = lam == setting["lam_hi"]
    return cf.peak_time(amp[hi].sum(), amp[~hi].sum(), gamma[hi][0], gamma[~hi][0])


def _spectrum_panel(ax, lam):
    """Bar plot of the eigenvalue multiplicities (the paper's spectrum inset)."""
    values, counts = np.unique(lam, return_counts=True)
    ax.bar(values, counts, width=0.05 * np.ptp(lam) + 1e-3, color="0.4")
    ax.set(xlabel=r"eigenvalue $\lambda$", ylabel="multiplicity", title="spectrum of C")


def _closed_form_reward(lam, alpha, kappa, x0, t):
    """E[J_t] (Eqs. 16, 18)."""
    return cf.expected_reward(lam, *cf.mode_moments(lam, alpha, kappa, t, x0))


def _reward_panel(ax, t, runs_by_n, exact, title):
    """Monte Carlo mean per population (solid) against an exact expectation (dashed)."""
    for n, runs, color in zip(POPULATIONS, runs_by_n, _colors(len(POPULATIONS))):
        ax.plot(t, runs.mean(axis=0), color=color, lw=1.5, label=f"N={n}")
        ax.plot(t, exact(n), color="k", lw=0.8, ls="--")
    ax.set(xlabel="iteration t", ylabel=r"$\mathbb{E}[J(\theta_t)]$", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="lower center", ncol=3)


def figure3(path, rng, seeds=128, es_seeds=64, steps=400):
    """Figure 3's spectrum: (a) Eq. 14 vs Eqs. 16/18; (b) Algorithm 1 with baseline vs its exact moments."""
    s = FIGURE3
    lam, x0 = example()
    alpha, sigma = s["alpha"], s["sigma"]
    t = np.arange(steps + 1)
    fig = _figure(13, 4.2)
    ax_ou, ax_es, spectrum = fig.subplots(1, 3, width_ratios=(4, 4, 1.3))
    rewards, _ = ou_runs(lam, alpha, sigma, POPULATIONS, seeds, steps, rng, x0)
    _reward_panel(ax_ou, t, rewards, lambda n: _closed_form_reward(lam, alpha, sigma**2 / n, x0, t),
                  f"(a) Eq. 14, $\\kappa=\\sigma^2/N$, $\\sigma$={sigma}, $\\alpha$={alpha} "
                  "(dashed: Eqs. 16, 18)")
    es_sigma = sigma / np.sqrt(cf.es_noise_floor(lam).mean())  # same noise floor scale as (a)
    rewards, _ = es_runs(lam, alpha, es_sigma, POPULATIONS, es_seeds, steps, rng, x0, baseline=True)
    _reward_panel(ax_es, t, rewards,
                  lambda n: cf.expected_reward(lam, 0.0, cf.es_second_moments(lam, alpha, es_sigma, n, t, x0)),
                  f"(b) Algorithm 1, $r_k - J(\\theta_t)$, $\\sigma$={es_sigma:.3g} (dashed: exact moments, Eq. 31)")
    _spectrum_panel(spectrum, lam)
    fig.suptitle(f"Quadratic toy, D={s['dim']}, d={s['stiff']}, $\\lambda_h$={s['lam_hi']}, "
                 f"$\\lambda_l$={s['lam_lo']}", fontsize=10)
    return _save(fig, path)


def figure7(path, rng, population=2, seeds=256, steps=300):
    """Figure 7: total reward with Eq. 25's peak, stiff and flat mode means and variances (Eqs. 15-21)."""
    s = FIGURE3
    lam, x0 = example()
    hi = lam == s["lam_hi"]
    kappa = s["sigma"] ** 2 / population
    t = np.arange(steps + 1)
    mu, v = cf.mode_moments(lam, s["alpha"], kappa, t, x0)
    states = ou_states(lam, s["alpha"], s["sigma"], [population], seeds, steps, rng, x0)
    reward, *modes = record(states, quadratic_reward(lam),
                            lambda x: x[:, hi].mean(), lambda x: x[:, ~hi].mean(),
                            lambda x: x[:, hi].var(axis=0).mean(), lambda x: x[:, ~hi].var(axis=0).mean())
    fig = _figure(8, 8.5)
    grid = fig.add_gridspec(3, 2)
    top = grid[0, :].subgridspec(1, 2, width_ratios=(4, 1))
    ax = fig.add_subplot(top[0])
    ax.plot(t, reward.mean(axis=0), color="C0", lw=1.5, label=f"Monte Carlo, R={seeds}")
    ax.plot(t, cf.expected_reward(lam, mu, v), "k--", lw=1, label=r"$\mathbb{E}[J_t]$ (Eq. 18)")
    ax.axhline(cf.plateau(lam, s["alpha"], kappa), color="0.5", ls=":", label=r"$J_\infty$ (Eq. 19)")
    ax.axvline(example_peak(kappa), color="C3", ls="--", label=r"$t_{peak}$ (Eq. 25)")
    ax.set(xlabel="t", ylabel="reward", title=f"(a) total reward, N={population}, $\\kappa$={kappa:.3g}")
    ax.legend(fontsize=7, loc="lower right")
    _spectrum_panel(fig.add_subplot(top[1]), lam)
    panels = [("(b) stiff mean", modes[0], mu[:, hi][:, 0], grid[1, 0]),
              ("(c) flat mean", modes[1], mu[:, ~hi][:, 0], grid[1, 1]),
              ("(d) stiff variance", modes[2], v[:, hi][:, 0], grid[2, 0]),
              ("(e) flat variance", modes[3], v[:, ~hi][:, 0], grid[2, 1])]
    for title, measured, exact, cell in panels:
        ax = fig.add_subplot(cell)
        ax.plot(t, measured, color="C0", lw=1.2, label="Monte Carlo")
        ax.plot(t, exact, "k--", lw=1, label="Eq. 16")
        ax.set(xlabel="t", title=title)
        ax.legend(fontsize=7)
    return _save(fig, path)


def figure8(path, rng, seeds=64, dims=(4, 16, 64), lam_rank=1.0):
    """Figure 8: (a) CLSS probes from theta* = 0 vs Eqs. 16/18; (b) J_inf vs kappa, Eq. 26 lines, CLSS points."""
    s = FIGURE3
    alpha, sigma = s["alpha"], s["sigma"]
    lam, _ = example()
    steps = default_steps(lam, alpha)
    t = np.arange(steps + 1)
    window = steps // 4
    fig = _figure(11, 4.2)
    ax_a, ax_b = fig.subplots(1, 2)
    rewards, _ = ou_runs(lam, alpha, sigma, POPULATIONS, seeds, steps, rng)
    for n, runs, color in zip(POPULATIONS, rewards, _colors(len(POPULATIONS))):
        ax_a.plot(t, runs.mean(axis=0), color=color, lw=1.5, label=f"N={n}")
        ax_a.plot(t, _closed_form_reward(lam, alpha, sigma**2 / n, 0.0, t), "k--", lw=0.8)
    ax_a.axvspan(steps - 2 * window, steps, color="0.9", label="tail windows")
    ax_a.set(xlabel="probe step t", ylabel=r"$\mathbb{E}[J(\theta_t)]$", ylim=(0, 1.02),
             title=r"(a) probes from $\theta^*$ (solid: Monte Carlo, dashed: Eqs. 16, 18)")
    ax_a.legend(fontsize=7, loc="lower right")
    kappa = np.linspace(0.0, sigma**2 / min(POPULATIONS), 50)
    for d, color in zip(dims, _colors(len(dims))):
        rank = np.full(d, lam_rank)  # strict rank-d C: zero modes never change J, so only d are simulated
        ax_b.plot(kappa, 1.0 - alpha / 4.0 * cf.d_eff(rank, alpha) * kappa, color=color, lw=1,
                  label=f"d={d}: Eq. 27 $d_{{eff}}$={cf.d_eff(rank, alpha):.1f}")
        result = clss.fit(ou_probes(rank, alpha, sigma, POPULATIONS, seeds, default_steps(rank, alpha), rng), alpha)
        ax_b.errorbar([p.kappa for p in result.plateaus], [p.value for p in result.plateaus],
                      [2 * p.stderr for p in result.plateaus], fmt="o", ms=4, color=color,
                      label=f"   CLSS $\\hat d_{{eff}}$={result.d_eff:.1f} "
                            f"[{result.d_eff_ci[0]:.1f}, {result.d_eff_ci[1]:.1f}]")
    ax_b.set(xlabel=r"$\kappa = \sigma^2/N$", ylabel=r"$J_\infty$",
             title=rf"(b) plateau vs noise, rank-d C ($\lambda$={lam_rank}, $\alpha$={alpha})")
    ax_b.legend(fontsize=7)
    return _save(fig, path)


REGIMES = ((20.0, "metastable"), (3.5, "rare hopping"), (0.7, "delocalized"))
WELL = dict(lam_dw=1.0, a=1.0, alpha=0.05, population=8)


def figure9(path, rng, seeds=400, steps=3000, shown=5):
    """Figure 9: double-well landscape, final-position histograms and trajectories in three regimes (Eqs. 43-48)."""
    lam_dw, a, alpha, n = WELL["lam_dw"], WELL["a"], WELL["alpha"], WELL["population"]
    fig = _figure(9, 10)
    grid = fig.add_gridspec(4, 2, height_ratios=[0.8, 1, 1, 1])
    ax = fig.add_subplot(grid[0, :])
    x = np.linspace(-1.8 * a, 1.8 * a, 300)
    ax.plot(x, -dw.loss(x, lam_dw, a), "k")
    ax.set(xlabel=r"$\theta_0$", ylabel=r"$J(\theta_0) = -L$",
           title=r"(a) double well: minima of $L$ (maxima of $J$) at $\pm a$, saddle at 0")
    t = np.arange(steps + 1)
    for row, (ratio, name) in enumerate(REGIMES, start=1):
        sigma = np.sqrt(lam_dw * a**4 * n / (2.0 * alpha * ratio))  # Eq. 48 solved for sigma
        (paths,) = record(dw.runs(lam_dw, a, alpha, sigma, n, seeds, steps, rng), lambda x: x)
        hops = dw.count_hops(paths.T, a)
        predicted = dw.hop_probability(steps, dw.escape_steps(lam_dw, a, alpha, sigma, n))
        label = (f"$\\Delta L/\\varepsilon$={ratio:g} ({name}): hop% {100 * np.mean(hops.count > 0):.0f} "
                 f"(Eq. 43: {100 * predicted:.0f})")
        hist = fig.add_subplot(grid[row, 0])
        hist.hist(hops.final, bins=np.linspace(-2 * a, 2 * a, 41), color="C0")
        hist.set(xlabel=r"final $\theta_0$", ylabel="runs", title=f"({'bdf'[row - 1]}) {label}")
        hist.title.set_fontsize(8)
        lines = fig.add_subplot(grid[row, 1])
        lines.plot(t, paths[:shown].T, lw=0.6)
        lines.axhline(0.0, color="k", lw=0.5)
        lines.set(xlabel="t", ylabel=r"$\theta_0(t)$", ylim=(-2 * a, 2 * a), title=f"({'ceg'[row - 1]}) trajectories")
    return _save(fig, path)


def _colors(count):
    """Distinct colours from viridis."""
    return colormaps["viridis"](np.linspace(0.0, 0.85, count))


def _figure(width, height):
    """A figure drawn by the Agg backend (no pyplot state)."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write a PNG."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_all(out, seed=0):
    """Write the four figures into ``out`` as toy_figure{3,7,8,9}.png; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return [figure(out / f"toy_{figure.__name__}.png", rng) for figure in (figure3, figure7, figure8, figure9)]
