"""Best-of-N curves and perturbation statistics of reward-probe files (layout: analysis/best_of_n/SCHEMA.md).

    python -m analysis.best_of_n FILE.h5 [FILE.h5 ...] --out DIR [--ns 5 10 20 30 50] [--json]

One file per model size; they combine into one set of figures (paper Figures 6, 11-16 equivalents):
probe_best_of_n.png (best-of-N / (1 - R0) vs N per model, +-1.96 SE over batches), probe_best_vs_size.png
(best-of-30 vs perturbed parameters per sigma), probe_histograms.png (dR / (1 - R0) per model and sigma),
probe_sigma.png (sigma sensitivity), and the numbers in best_of_n.csv, summary.csv and best_of_n.json.
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import DEFAULT_NS, analyse, headroom, read_probe, to_json, write_tables  # noqa: E402


def parser():
    """Argument parser of ``python -m analysis.best_of_n``."""
    p = argparse.ArgumentParser(prog="python -m analysis.best_of_n", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="probe files (`python -m es_hpc probe`), one per model size")
    p.add_argument("--out", required=True, help="directory for the PNGs, CSVs and JSON")
    p.add_argument("--ns", type=int, nargs="+", default=list(DEFAULT_NS), help="population sizes N (each <= M)")
    p.add_argument("--emphasis", type=int, default=30, help="the N of the per-size and sigma figures (default 30)")
    p.add_argument("--candidate-reps", type=int, default=1000, help="bootstrap replicates over candidates (G.7)")
    p.add_argument("--prompt-reps", type=int, default=200, help="prompt-bootstrap replicates (robustness check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstraps")
    p.add_argument("--json", action="store_true", help="print the full results as JSON")
    return p


def _sigma_colors(results):
    sigmas = sorted({s["sigma"] for r in results for s in r["sigmas"]})
    cmap = plt.get_cmap("viridis")
    return {s: cmap(i / max(1, len(sigmas) - 1)) for i, s in enumerate(sigmas)}


def _save(fig, path: Path) -> Path:
    """Write one figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(results, out: Path) -> Path:
    """Best-of-N / (1 - R0) against N, one panel per model, one line per sigma (Fig. 6)."""
    colors = _sigma_colors(results)
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, r in zip(axes[0], results):
        for s in r["sigmas"]:
            ns = [c["N"] for c in s["curve"]]
            ax.errorbar(ns, [c["best_rel"] for c in s["curve"]], yerr=[1.96 * c["se_rel"] for c in s["curve"]],
                        marker="o", capsize=3, color=colors[s["sigma"]], label=f"sigma={s['sigma']:g}")
        ax.axhline(0, color="gray", ls="--", lw=0.8)
        ax.set(xlabel="population N", ylabel="best-of-N dR / (1 - R0)", title=f"{r['label']} (R0={r['r0']:.3f})")
        ax.legend(fontsize=8)
    return _save(fig, out / "probe_best_of_n.png")


def plot_vs_size(results, out: Path) -> Path:
    """Best-of-N* (N* = --emphasis) / (1 - R0) against perturbed parameters, one line per sigma."""
    colors = _sigma_colors(results)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    e = results[0]["emphasis"]
    for sigma, color in colors.items():
        pts = [(r["parameters"], s[f"best_of_{e}"]) for r in results for s in r["sigmas"] if s["sigma"] == sigma
               and f"best_of_{e}" in s]
        pts.sort(key=lambda p: p[0])
        ax.errorbar([p for p, _ in pts], [b["best_rel"] for _, b in pts], yerr=[1.96 * b["se_rel"] for _, b in pts],
                    marker="o", capsize=3, color=color, label=f"sigma={sigma:g}")
    ax.set_xscale("log")
    ax.axhline(0, color="gray", ls="--", lw=0.8)
    ax.set(xlabel="perturbed parameters", ylabel=f"best-of-{e} dR / (1 - R0)", title=f"best-of-{e} vs model size")
    ax.legend(fontsize=8)
    return _save(fig, out / "probe_best_vs_size.png")


def plot_histograms(results, probes, out: Path) -> Path:
    """dR / (1 - R0) per model (rows) and sigma (columns), mean line and p(dR > 0) (Figs. 13-15)."""
    ncol = max(len(p.sigmas) for p in probes)
    fig, axes = plt.subplots(len(probes), ncol, figsize=(3.4 * ncol, 2.7 * len(probes)), squeeze=False)
    for row, p in zip(axes, probes):
        for ax, sigma, d in zip(row, p.sigmas, p.deltas):
            rel = d[~np.isnan(d)] / headroom(p.r0)
            step = 1 / (len(p.base_bits) * headroom(p.r0))  # dR moves in steps of 1/P: one bin per step
            bins = np.arange(rel.min() - step / 2, rel.max() + step, step) if np.ptp(rel) / step <= 60 else 30
            ax.hist(rel, bins=bins, color="steelblue", alpha=0.8)
            ax.axvline(0, color="gray", ls="--", lw=1)
            ax.axvline(rel.mean(), color="green" if rel.mean() > 0 else "red", lw=1.5)
            ax.set_title(f"{p.label} sigma={sigma:g}  p(dR>0)={np.mean(rel > 0):.2f}", fontsize=9)
            ax.set_xlabel("dR / (1 - R0)")
        for ax in row[len(p.sigmas):]:
            ax.axis("off")
    return _save(fig, out / "probe_histograms.png")


def plot_sigma(results, out: Path) -> Path:
    """Sigma sensitivity per model (Figs. 11-12): best-of-N* raw and over (1 - R0), p(dR > 0), E[dR]."""
    e = results[0]["emphasis"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for r in results:
        sig = [s["sigma"] for s in r["sigmas"]]
        best = [s[f"best_of_{e}"] for s in r["sigmas"]]
        axes[0].errorbar(sig, [b["best"] for b in best], yerr=[b["ci95"] for b in best], marker="o", capsize=3,
                         label=r["label"])
        axes[1].errorbar(sig, [b["best_rel"] for b in best], yerr=[1.96 * b["se_rel"] for b in best], marker="o",
                         capsize=3, label=r["label"])
        for ax, key in ((axes[2], "p_improve"), (axes[3], "mean_delta")):
            v = [s[key] for s in r["sigmas"]]
            ax.errorbar(sig, [x["value"] for x in v], marker="o", capsize=3, label=r["label"],
                        yerr=np.abs(np.array([[x["ci"][0] - x["value"], x["ci"][1] - x["value"]] for x in v]).T))
    labels = (f"best-of-{e} dR", f"best-of-{e} dR / (1 - R0)", "p(dR > 0)", "E[dR]")
    for ax, label in zip(axes, labels):
        ax.set_xscale("log")
        ax.axhline(0, color="gray", ls="--", lw=0.8)
        ax.set(xlabel="sigma", ylabel=label)
        ax.legend(fontsize=8)
    return _save(fig, out / "probe_sigma.png")


def main(argv=None):
    """Entry point; returns the exit status (2 on unreadable input)."""
    args = parser().parse_args(argv)
    try:
        probes = [read_probe(f) for f in args.files]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels = [p.label for p in probes]
    for p in probes:  # the same model twice (e.g. two runs): name them by file instead
        if labels.count(p.label) > 1:
            p.label = Path(p.path).parent.name + "/" + Path(p.path).name
    probes.sort(key=lambda p: p.parameters)
    try:
        results = [analyse(p, args.ns, args.emphasis, args.candidate_reps, args.prompt_reps, args.seed) for p in probes]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    written = write_tables(results, out)
    written += [plot_curves(results, out), plot_vs_size(results, out), plot_histograms(results, probes, out),
                plot_sigma(results, out)]
    if args.json:
        print(to_json(results))
    else:
        for r in results:
            for s in r["sigmas"]:
                b = s[f"best_of_{r['emphasis']}"]
                print(f"{r['label']} sigma={s['sigma']:g} R0={r['r0']:.3f}: best-of-{r['emphasis']} "
                      f"{b['best']:+.4f} (rel {b['best_rel']:+.3f} +- {1.96 * b['se_rel']:.3f}), "
                      f"p(dR>0) {s['p_improve']['value']:.3f}, E[dR] {s['mean_delta']['value']:+.4f}, "
                      f"N90 {s['n90']:g}, q0.95 {s['q95_rel']:+.3f}")
        print("wrote " + " ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
