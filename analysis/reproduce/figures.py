"""The report's figures (docs/figures/reproduce_*.png), drawn from `measure.measure`'s numbers only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.slq import density

from .claims import _best_sigma


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def best_of_n(probe: dict, path: Path) -> Path:
    """(a) best-of-N / (1 - R0) against N at each size's best sigma (Fig. 6); (b) N90 against size."""
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    for k, v in probe.items():
        b = _best_sigma(v)
        ax.plot(v["ns"], b["curve"], label=f"{k} ({v['parameters'] / 1e6:.2f}M, sigma {b['sigma']:g})")
        m, h = b["n90"]
        bx.errorbar([v["parameters"]], [m], yerr=[[np.nan_to_num(h)]], fmt="o", capsize=3, label=k)
    ax.set(xlabel="N", ylabel="best-of-N / (1 - R0)", title="(a) best-of-N at each size's best sigma")
    ax.legend(fontsize=8)
    bx.axhspan(30, 40, color="0.9", label="paper: N ~ 30-40")
    bx.set(xscale="log", xlabel="perturbed parameters", ylabel="N90 (mean over batches, 95% interval)",
           title="(b) saturation population against size")
    bx.legend(fontsize=8)
    return _save(fig, path)


def sigma_window(probe: dict, path: Path) -> Path:
    """(a) best-of-N against sigma per size (Fig. 12); (b) p(dR > 0) with its interval (Fig. 11)."""
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    for k, v in probe.items():
        sig = [s["sigma"] for s in v["sigmas"]]
        ax.errorbar(sig, [s["best"][0] for s in v["sigmas"]], yerr=[np.nan_to_num(s["best"][1]) for s in v["sigmas"]],
                    marker="o", capsize=3, label=k)
        p = np.array([s["p_improve"] for s in v["sigmas"]])
        bx.errorbar(sig, p[:, 0], yerr=[p[:, 0] - p[:, 1], p[:, 2] - p[:, 0]], marker="o", capsize=3, label=k)
    emphasis = next(iter(probe.values()))["emphasis"] if probe else 30
    ax.set(xscale="log", xlabel="sigma", ylabel=f"best-of-{emphasis} / (1 - R0)", title="(a) locality window")
    bx.set(xscale="log", xlabel="sigma", ylabel="p(dR > 0)", title="(b) accessibility of improvements")
    ax.legend(fontsize=8)
    bx.legend(fontsize=8)
    return _save(fig, path)


def rise_decay(train: dict, path: Path) -> Path:
    """(a) training reward on the fixed set, raw and smoothed, with the peak (Figs. 1, 10); (b) held-out reward."""
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    for i, (n, r) in enumerate(sorted(train.items())):
        c = f"C{i}"
        ax.plot(r["t"], r["raw"], color=c, alpha=0.25, lw=0.7)
        ax.plot(r["t"], r["smooth"], color=c, label=f"N={n} (smoothed over {r['width']})")
        ax.axvspan(*r["t_peak_range"], color=c, alpha=0.12)
        ax.plot([r["t_peak"]], [r["peak"]], "v", color=c)
        bx.plot(r["eval_t"], r["eval"], "o-", ms=3, color=c, label=f"N={n}")
    ax.set(xlabel="ES iteration", ylabel="population mean reward, fixed training set",
           title="(a) training reward: rise, peak, decay")
    bx.set(xlabel="ES iteration", ylabel="held-out reward (test)", title="(b) held-out reward")
    ax.legend(fontsize=8)
    bx.legend(fontsize=8)
    return _save(fig, path)


def spectra(slq: dict, path: Path) -> Path:
    """SLQ densities of every size (Fig. 17), |lambda| scaled by each size's max so the shapes compare."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    grid = np.linspace(-1.05, 1.05, 841)
    for k, v in slq.items():
        top = v["lambda_abs_max"]
        rho = density(np.asarray(v["nodes"]) / top, np.asarray(v["weights"]) / v["n"], grid, 0.01)
        ax.semilogy(grid, np.maximum(rho, 1e-12), label=f"{k} (max|lambda| {top:.3g})")
    ax.set(ylim=(1e-8, None), xlabel="lambda / max|lambda|", ylabel="spectral density (per parameter)",
           title=f"hvp SLQ spectra ({next(iter(slq.values()))['objective'] if slq else ''} Hessian)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw_all(m: dict, out: Path) -> list[Path]:
    """Every figure whose experiment has data, into out/reproduce_*.png."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(m["probe"], best_of_n, "best_of_n"), (m["probe"], sigma_window, "sigma_window"),
            (m["train"], rise_decay, "rise_decay"), (m["slq"], spectra, "spectra")]
    return [draw(data, out / f"reproduce_{name}.png") for data, draw, name in jobs if data]
