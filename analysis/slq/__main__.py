"""CLI for SLQ curvature spectra (paper Alg. 3, Appendix G.10, Figure 17).

  python -m analysis.slq --matrix A.npy --probes s --steps m [--seed S] [--dist D] [--json]
      SLQ of a dense symmetric matrix stored with numpy.save; prints the summaries and the trace's standard error.
  python -m analysis.slq FILE.h5 [FILE.h5 ...] --out DIR [--width W]
      From each file's stored `slq/` group (no matvecs): DIR/density_<i>_<stem>.png, DIR/summaries.png (Figure 17's
      four panels against a label per file: the root attribute `model`'s last path component, else the file stem,
      plus the operator kind when stored;
      files sharing a label, e.g. seeds of one model, are pooled as mean +- std) and DIR/summaries.json (with the
      exact spectrum's summaries, and its density drawn dashed, for files of the Stein operator; with the Stein
      null band, the spectra of dR permuted among candidates, when the file stores one).
      Every spectrum is reported for the reward objective (negative definite at a maximum): files whose
      `slq/@objective` (or, without it, `slq/@kind` = hvp) says cross_entropy are negated; files that say
      neither are reported as stored, and their axis says so.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import h5py
import numpy as np

from analysis.hdf5 import open_file
from analysis.slq import PROBE_DISTS, SLQResult, density, slq, summaries
from analysis.slq.store import as_reward, objective, read_exact, read_null, read_slq

FIGURE17 = (  # (summary key, panel title, transform of the mean): the panels of Figure 17 (a)-(d)
    ("lambda_min", r"(a) $|\lambda_{\min}|$", abs),
    ("negative_mass", "(b) negative spectral mass", float),
    ("participation_ratio", "(c) participation ratio", float),
    ("effective_rank", "(d) effective rank", float),
)
NULL_LEVEL = 0.95  # central fraction of the permutations shown as the Stein null band
GRID_POINTS = 2000
DEFAULT_RELATIVE_WIDTH = 0.01  # default Gaussian broadening: 1% of the Ritz-value range


def _json_safe(x):
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x if not isinstance(x, float) or math.isfinite(x) else None


def run_matrix(args) -> None:
    """SLQ of the dense matrix in args.matrix; print summaries (JSON with --json, else one per line)."""
    a = np.load(args.matrix).astype(np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.allclose(a, a.T, rtol=1e-10, atol=0):
        raise SystemExit(f"--matrix: {args.matrix} is not a square symmetric matrix")
    result = slq(a, a.shape[0], args.probes, args.steps, args.seed, args.dist, operator=f"dense:{args.matrix}")
    out = {"n": a.shape[0], "probes": args.probes, "steps": args.steps, "seed": args.seed, "dist": args.dist,
           **result.summaries()}
    print(json.dumps(_json_safe(out), indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


def file_label(f: h5py.File, path: Path) -> str:
    """The root attribute `model` (its last path component) or, without one, the file stem; followed by the
    operator kind (`slq/@kind`, written by the online job) so that runs of different operators never pool."""
    label = Path(str(f.attrs["model"])).name if "model" in f.attrs else path.stem
    return f"{label} {f['slq'].attrs['kind']}" if "kind" in f["slq"].attrs else label


def density_curve(result: SLQResult, width: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Grid, broadened density and the width used (default: DEFAULT_RELATIVE_WIDTH of the node range, or of
    max |node| or 1 when all nodes coincide)."""
    nodes, weights = result.measure()
    lo, hi = nodes.min(), nodes.max()
    width = width or DEFAULT_RELATIVE_WIDTH * float((hi - lo) or abs(hi) or 1.0)
    grid = np.linspace(lo - 5 * width, hi + 5 * width, GRID_POINTS)
    return grid, density(nodes, weights, grid, width), width


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported only when a figure is drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def axis_label(obj: str | None) -> str:
    """The eigenvalue axis: the reward Hessian's, or the stored operator's when the file names no objective."""
    return r"eigenvalue $\lambda$ of the reward Hessian" if obj else r"eigenvalue $\lambda$ (objective not stored)"


def plot_density(grid, rho, title: str, path: Path, exact=None, null=None, xlabel: str = axis_label("reward")) -> None:
    """One spectral density on a log axis (outliers sit orders of magnitude below the bulk); `exact`, a density of
    the exact spectrum on the same grid, is drawn dashed beside it, and `null` (densities of the permuted-dR
    spectra, one row each) as the band between their pointwise NULL_LEVEL quantiles."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(grid, rho, label="SLQ")
    if exact is not None:
        ax.semilogy(grid, exact, ls="--", label="exact")
    if null is not None:
        lo, hi = np.quantile(null, [(1 - NULL_LEVEL) / 2, (1 + NULL_LEVEL) / 2], axis=0)
        ax.fill_between(grid, np.maximum(lo, rho.max() * 1e-7), hi, color="gray", alpha=0.35,
                        label="null (dR permuted)")
    if exact is not None or null is not None:
        ax.legend()
    ax.set_ylim(rho.max() * 1e-6, rho.max() * 2)
    ax.axvline(0.0, color="gray", lw=0.8, ls="--")
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def null_band(null: list) -> dict[str, dict]:
    """Per summary: mean and central NULL_LEVEL interval of the exact summaries over the permutations."""
    rows = [summaries(*measure) for measure in null]
    tail = (1 - NULL_LEVEL) / 2
    return {k: {"mean": float(np.mean(v)), "lo": float(np.quantile(v, tail)), "hi": float(np.quantile(v, 1 - tail))}
            for k, v in ((k, [r[k] for r in rows]) for k in rows[0])}


def pooled(records: list[dict]) -> dict[str, dict]:
    """Per label (first-seen order): mean, std and count of every summary over the files with that label."""
    out = {}
    for label in dict.fromkeys(r["label"] for r in records):
        rows = [r["summaries"] for r in records if r["label"] == label]
        columns = {k: [row[k] for row in rows] for k in rows[0]}
        out[label] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "count": len(v)}
                      for k, v in columns.items()}
    return out


def plot_summaries(stats: dict[str, dict], path: Path, nulls: dict[str, dict] | None = None) -> None:
    """Figure 17: the four summaries against the labels of `pooled` stats, mean +- std over files per label, and
    beside them (grey) the Stein null band of a label's first file that stores one."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(8, 6))
    labels = list(stats)
    for ax, (key, title, transform) in zip(axes.flat, FIGURE17):
        ax.errorbar(range(len(labels)), [transform(stats[lab][key]["mean"]) for lab in labels],
                    yerr=[stats[lab][key]["std"] for lab in labels], marker="o", capsize=3)
        for x, lab in enumerate(labels):
            band = (nulls or {}).get(lab)
            if band:
                ends = sorted(transform(band[key][end]) for end in ("lo", "hi"))
                ax.plot([x + 0.15] * 2, ends, color="gray", lw=4, alpha=0.6, solid_capstyle="butt")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_title(title)
    fig.suptitle("spectra of the reward objective (grey: Stein null, dR permuted)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _negate(measure):
    """The measure of -A from that of A."""
    return None if measure is None else (-measure[0], measure[1])


def read_file(path: Path) -> tuple:
    """Label, SLQ result, exact and null measures, all in the reward's sign, and the stored objective."""
    with open_file(path) as f:
        try:
            label, result, obj = file_label(f, path), read_slq(f), objective(f)
            exact, null = read_exact(f), read_null(f)
        except ValueError as exc:  # no probe stored yet (a running job's file), or an unknown objective
            raise SystemExit(f"error: {exc}") from None
    if obj == "cross_entropy":
        result, exact, null = as_reward(result), _negate(exact), null and [_negate(m) for m in null]
    return label, result, exact, null, obj


def run_files(args) -> None:
    """Densities, Figure 17 panels and a JSON of the numbers for the stored `slq/` groups of args.files."""
    args.out.mkdir(parents=True, exist_ok=True)
    records, nulls = [], {}
    for i, path in enumerate(args.files):
        label, result, exact, null, obj = read_file(path)
        grid, rho, width = density_curve(result, args.width)
        png = f"density_{i}_{path.stem}.png"
        plot_density(grid, rho, f"{label} (width {width:.3g})", args.out / png,
                     None if exact is None else density(*exact, grid, width),
                     None if null is None else np.array([density(*m, grid, width) for m in null]), axis_label(obj))
        records.append({"file": str(path), "label": label, "n": result.n, "probes": len(result.alpha),
                        "steps": max(len(a) for a in result.alpha), "probe_dist": result.probe_dist,
                        "operator": result.operator, "seed": result.seed, "width": width, "density_png": png,
                        "objective_stored": obj, "reported_as": "reward" if obj else "as stored (objective unknown)",
                        "sign_flipped": obj == "cross_entropy", "summaries": result.summaries()})
        if exact is not None:  # a Stein run: the exact spectrum of the same operator, for comparison
            records[-1]["exact_summaries"] = summaries(*exact)
        if null is not None:
            records[-1]["null_summaries"] = null_band(null)
            nulls.setdefault(label, records[-1]["null_summaries"])
    stats = pooled(records)
    plot_summaries(stats, args.out / "summaries.png", nulls)
    report = {"files": records, "labels": stats}
    (args.out / "summaries.json").write_text(json.dumps(_json_safe(report), indent=2))


def main(argv=None) -> None:
    """Parse the command line and run the --matrix mode or the HDF5 mode."""
    p = argparse.ArgumentParser(prog="python -m analysis.slq", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", type=Path, help="HDF5 files with an slq/ group")
    p.add_argument("--out", type=Path, help="output directory for the HDF5 mode")
    p.add_argument("--width", type=float, help="Gaussian broadening of the densities (default: 1%% of the range)")
    p.add_argument("--matrix", type=Path, help=".npy file of a dense symmetric matrix")
    p.add_argument("--probes", type=int, default=64, help="Hutchinson probes s")
    p.add_argument("--steps", type=int, default=80, help="Lanczos steps m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dist", choices=PROBE_DISTS, default="rademacher")
    p.add_argument("--json", action="store_true", help="print the --matrix summaries as JSON")
    args = p.parse_args(argv)
    if args.matrix is not None and not args.files:
        run_matrix(args)
    elif args.files and args.matrix is None and args.out is not None:
        run_files(args)
    else:
        p.error("give either --matrix A.npy, or one or more FILE.h5 with --out DIR")


if __name__ == "__main__":
    main()
