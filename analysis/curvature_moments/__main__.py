"""Curvature moments of the reward from antithetic probe files (layout: analysis/best_of_n/SCHEMA.md).

    python -m analysis.curvature_moments FILES... [--json] [--out DIR] [--reps B]

Per file and sigma: tr H, tr H^2, |g|^2, eff_dim with bootstrap intervals over candidates, and the
scaling check across the sigma grid (E[s] ~ sigma^2, Var(s) ~ sigma^4, Var(a) ~ sigma^2; the sigmas
whose tr H and tr H^2 agree with the smallest sigma's). --out DIR writes curvature_moments.json and
curvature_moments.png. Exit status 2 on bad input (one-line error).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from analysis.clss import json_ready

from . import analyse


def parser():
    """Argument parser of ``python -m analysis.curvature_moments``."""
    p = argparse.ArgumentParser(prog="python -m analysis.curvature_moments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="antithetic probe files (probe/ group)")
    p.add_argument("--out", default=None, help="directory for curvature_moments.json and .png")
    p.add_argument("--reps", type=int, default=1000, help="bootstrap replicates over candidates")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    return p


def figure(reports, path):
    """tr H and tr H^2 against sigma with intervals (left, middle) and |E[s]|, Var(s), Var(a) on log axes
    with the expected sigma^2, sigma^4, sigma^2 lines through the smallest sigma (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(13, 4))
    axes = fig.subplots(1, 3)
    for report in reports:
        rows = sorted(report["per_sigma"], key=lambda r: r["sigma"])
        sig = np.array([r["sigma"] for r in rows])
        for ax, q in zip(axes[:2], ("tr_H", "tr_H2")):
            value = np.array([r[q]["value"] for r in rows])
            ci = np.array([r[q]["ci"] for r in rows]).T
            ax.errorbar(sig, value, yerr=[value - ci[0], ci[1] - value], marker="o", capsize=3, label=report["model"])
        for key, power, marker in (("mean_s", 2, "o"), ("var_s", 4, "s"), ("var_a", 2, "^")):
            y = np.abs([r[key] for r in rows])
            axes[2].loglog(sig, y, marker=marker, linestyle="none", label=f"{report['model']}: {key}")
            axes[2].loglog(sig, y[0] * (sig / sig[0]) ** power, color="grey", linewidth=0.8)
    for ax, title in zip(axes, ("tr H (reward Hessian; < 0 at a maximum)", "tr H^2", "|E s|, Var s, Var a vs sigma")):
        ax.set_xscale("log")
        ax.set_xlabel("sigma")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def main(argv=None):
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        reports = [json_ready(analyse(path, args.reps)) for path in args.files]
    except (OSError, KeyError, ValueError) as error:
        print(f"error: {str(error).strip(chr(39) + chr(34))}", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "curvature_moments.json").write_text(json.dumps(reports, indent=2))
        figure(reports, out / "curvature_moments.png")
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            for r in sorted(report["per_sigma"], key=lambda r: r["sigma"]):
                print(f"{report['model']} sigma={r['sigma']:g}: " + "  ".join(
                    f"{q}={r[q]['value']:.4g} [{r[q]['ci'][0]:.4g}, {r[q]['ci'][1]:.4g}]"
                    for q in ("tr_H", "tr_H2", "grad_sq", "eff_dim")) + ("" if r["local"] else "  (outside window)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
