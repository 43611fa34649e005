"""Toy-model commands.

    python -m analysis.toy clss --dim 64 --stiff 8 --lam-hi 2 --lam-lo 0.1 --alpha 0.2 --sigma 1 --json
        CLSS (Algorithm 2) on probes of a two-block spectrum, compared with Eq. 27: --simulator ou
        (Eq. 14, the default) or es (Algorithm 1 with --shaping and --update-form, fitted against the
        measured kappa_eff, with the nominal sigma^2/N fit beside it); exit status 1 on FAIL.
    python -m analysis.toy moments --dim 4000 --stiff 10 --lam-hi 5 --lam-lo 0.1 --sigma 0.01 --candidates 240 --json
        The antithetic curvature-moment estimator (analysis.curvature_moments) on that quadratic:
        tr_H, tr_H2, grad_sq, eff_dim beside their exact values.
    python -m analysis.toy figures --out DIR
        Figures 3, 7, 8 and 9 as DIR/toy_figure{3,7,8,9}.png (docs/figures holds the committed ones).
"""

import argparse
import json
import sys

from .. import clss
from ..clss.kappa import SHAPINGS, UPDATE_FORMS


def parser():
    """Argument parser of ``python -m analysis.toy``."""
    top = argparse.ArgumentParser(prog="python -m analysis.toy", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clss", help="CLSS on Eq. 14 or Algorithm 1 probes of a two-block spectrum vs Eq. 27")
    c.add_argument("--simulator", choices=("ou", "es"), default="ou", help="Eq. 14 (ou) or Algorithm 1 (es)")
    c.add_argument("--shaping", choices=SHAPINGS, default="zscore", help="es: reward shaping")
    c.add_argument("--update-form", choices=UPDATE_FORMS, default="eq1", help="es: alpha/(N sigma) (eq1) or alpha/N")
    c.add_argument("--no-baseline", action="store_true", help="es: do not subtract J(theta_t) from the members")
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
    m = sub.add_parser("moments", help="antithetic curvature moments on a two-block quadratic vs exact values")
    for name, kind, text in [("--dim", int, "ambient dimension D"), ("--stiff", int, "number of stiff directions"),
                             ("--lam-hi", float, "stiff eigenvalue of C (H = -C)"),
                             ("--lam-lo", float, "flat eigenvalue"), ("--sigma", float, "perturbation scale"),
                             ("--candidates", int, "antithetic pairs M")]:
        m.add_argument(name, type=kind, required=True, help=text)
    m.add_argument("--seed", type=int, default=0, help="random seed (also draws the probe point theta0)")
    m.add_argument("--json", action="store_true", help="print the JSON report")
    f = sub.add_parser("figures", help="write Figures 3, 7, 8, 9 as PNG")
    f.add_argument("--out", required=True, help="output directory")
    f.add_argument("--seed", type=int, default=0, help="random seed")
    return top


def print_summary(report):
    """Human-readable CLSS summary."""
    print(f"CLSS {'ok' if report['ok'] else 'FAIL'}: {report['reason']}")
    if report["d_eff"] is not None and report["d_eff_eq27"] is not None:
        lo, hi = report["d_eff_ci"]
        print(f"d_eff = {report['d_eff']:.5g} [{lo:.5g}, {hi:.5g}]  Eq. 27: {report['d_eff_eq27']:.5g}  "
              f"(kappa {report['kappa_source']})")
    if report.get("nominal"):
        print(f"nominal fit (kappa = sigma^2 / N): d_eff = {_number(report['nominal']['d_eff'])}: "
              f"{report['nominal']['reason']}")
    for p in report["plateaus"]:
        print(f"  N={p['population']:<5} kappa={_number(p['kappa']):<10} J_inf={_number(p['value'])}  "
              f"Eq. 19: {_number(report['eq19_plateaus'].get(str(p['population'])))}  "
              f"valid {p['valid_seeds']}/{p['seeds']}")


def _number(value):
    """A JSON number for printing: 5 significant digits, '-' for None."""
    return "-" if value is None else f"{value:.5g}"


def _moments(args):
    """The moments subcommand: JSON, or one line per quantity."""
    from .moments import two_block_moments
    report = two_block_moments(args.dim, args.stiff, args.lam_hi, args.lam_lo, args.sigma, args.candidates, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    for name in ("tr_H", "tr_H2", "grad_sq", "eff_dim") if not args.json else ():
        lo, hi = report[f"{name}_ci"]
        print(f"{name:8} {report[name]:.5g} [{lo:.5g}, {hi:.5g}]  exact {report[name + '_exact']:.5g}")
    return 0


def main(argv=None):
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    if args.command == "figures":
        from .figures import write_all
        for path in write_all(args.out, args.seed):
            print(path)
        return 0
    if args.command == "moments":
        return _moments(args)
    from .spectroscopy import two_block_clss
    try:
        settings = clss.Settings(window=args.window, tau_loc=args.tau_loc, tau_stat=args.tau_stat, n_fit=args.n_fit)
        report = two_block_clss(args.dim, args.stiff, args.lam_hi, args.lam_lo, args.alpha, args.sigma,
                                args.populations, args.seeds, args.steps, args.seed, settings, args.simulator,
                                dict(shaping=args.shaping, update_form=args.update_form, baseline=not args.no_baseline))
    except ValueError as error:
        parser().error(str(error))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_summary(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
