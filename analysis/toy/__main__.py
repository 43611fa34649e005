"""Toy-model commands.

    python -m analysis.toy clss --dim 64 --stiff 8 --lam-hi 2 --lam-lo 0.1 --alpha 0.2 --sigma 1 --json
        CLSS (Algorithm 2) on Eq. 14 probes of a two-block spectrum, compared with Eq. 27;
        exit status 1 when CLSS returns FAIL.
    python -m analysis.toy figures --out DIR
        Figures 3, 7, 8 and 9 as DIR/toy_figure{3,7,8,9}.png (docs/figures holds the committed ones).
"""

import argparse
import json
import sys

from .. import clss


def parser():
    """Argument parser of ``python -m analysis.toy``."""
    top = argparse.ArgumentParser(prog="python -m analysis.toy", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clss", help="CLSS on Eq. 14 probes of a two-block spectrum vs Eq. 27")
    c.add_argument("--dim", type=int, required=True, help="ambient dimension D")
    c.add_argument("--stiff", type=int, required=True, help="number d of stiff directions")
    c.add_argument("--lam-hi", type=float, required=True, help="stiff eigenvalue")
    c.add_argument("--lam-lo", type=float, required=True, help="flat eigenvalue")
    c.add_argument("--alpha", type=float, required=True, help="step size")
    c.add_argument("--sigma", type=float, required=True, help="perturbation scale (kappa = sigma^2 / N)")
    c.add_argument("--populations", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="population sizes N")
    c.add_argument("--seeds", type=int, default=64, help="probe runs R per population")
    c.add_argument("--steps", type=int, default=None,
                   help="probe horizon T (default max(16 / gamma_min, 200), Eq. 21)")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--window", type=int, default=None, help="tail window w (default T // 4)")
    c.add_argument("--tau-loc", type=float, default=None, help="locality threshold on ||theta_t - theta*||")
    c.add_argument("--tau-stat", type=float, default=None, help="per-seed tail-settling tolerance")
    c.add_argument("--n-fit", type=int, default=None, help="fit only the n largest valid N (default all)")
    c.add_argument("--json", action="store_true", help="print the full JSON report")
    f = sub.add_parser("figures", help="write Figures 3, 7, 8, 9 as PNG")
    f.add_argument("--out", required=True, help="output directory")
    f.add_argument("--seed", type=int, default=0, help="random seed")
    return top


def print_summary(report):
    """Human-readable CLSS summary."""
    print(f"CLSS {'ok' if report['ok'] else 'FAIL'}: {report['reason']}")
    if report["d_eff"] is not None:
        lo, hi = report["d_eff_ci"]
        print(f"d_eff = {report['d_eff']:.5g} [{lo:.5g}, {hi:.5g}]  Eq. 27: {report['d_eff_eq27']:.5g}")
    for p in report["plateaus"]:
        value = "-" if p["value"] is None else f"{p['value']:.5g}"
        print(f"  N={p['population']:<5} kappa={p['kappa']:<10.4g} J_inf={value}  "
              f"Eq. 19: {report['eq19_plateaus'][str(p['population'])]:.5g}  valid {p['valid_seeds']}/{p['seeds']}")


def main(argv=None):
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    if args.command == "figures":
        from .figures import write_all
        for path in write_all(args.out, args.seed):
            print(path)
        return 0
    from .spectroscopy import two_block_clss
    try:
        settings = clss.Settings(window=args.window, tau_loc=args.tau_loc, tau_stat=args.tau_stat, n_fit=args.n_fit)
        report = two_block_clss(args.dim, args.stiff, args.lam_hi, args.lam_lo, args.alpha, args.sigma,
                                args.populations, args.seeds, args.steps, args.seed, settings)
    except ValueError as error:
        parser().error(str(error))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_summary(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
