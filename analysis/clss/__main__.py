"""Fit CLSS (Algorithm 2) to probe trajectories stored in HDF5 (layout: analysis/clss/SCHEMA.md).

    python -m analysis.clss FILE [--group clss] [--tau-loc X] [--tau-stat X] [--window W] [--json]

With several step sizes in the file, alphas are tried in ascending order and the first that passes
is reported (Algorithm 2's outer loop). Exit status 0 on success, 1 on FAIL (reason printed), 2 on bad
input (one-line error: unreadable file, missing group, impossible threshold).
"""

import argparse
import json
import sys
from pathlib import Path

from . import KAPPA_SOURCES, Settings, read_hdf5, scan


def parser():
    """Argument parser of ``python -m analysis.clss``."""
    p = argparse.ArgumentParser(prog="python -m analysis.clss", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="HDF5 file with a clss/ group")
    p.add_argument("--group", default="clss", help="group holding one subgroup per probe set (default clss)")
    defaults = Settings()
    p.add_argument("--window", type=int, default=None, help="tail window w (default T // 4)")
    p.add_argument("--tau-loc", type=float, default=None, help="reject seeds whose distance ever exceeds this")
    p.add_argument("--tau-stat", type=float, default=None, help="reject seeds with |J1 - J0| above this")
    p.add_argument("--r-min", type=int, default=defaults.r_min, help="minimum valid seeds per population")
    p.add_argument("--n-fit", type=int, default=None, help="fit only the n largest valid N (default all)")
    p.add_argument("--min-populations", type=int, default=defaults.min_populations)
    p.add_argument("--min-accept", type=float, default=defaults.min_accept, help="minimum overall seed acceptance")
    p.add_argument("--max-drift", type=float, default=defaults.max_drift,
                   help="largest allowed slope of the tail drift J0 - J1 vs kappa, as a fraction of S")
    p.add_argument("--drift-z", type=float, default=defaults.drift_z,
                   help="tail drift counts only beyond this many standard errors")
    p.add_argument("--min-p", type=float, default=defaults.min_p, help="smallest linearity p-value accepted")
    p.add_argument("--kappa", choices=KAPPA_SOURCES, default=defaults.kappa,
                   help="noise axis: measured kappa_eff from member rewards, nominal sigma^2/N, or auto (measured "
                        "when every probe set stores member rewards)")
    p.add_argument("--json", action="store_true", help="print the full JSON result")
    return p


def _error(message):
    """One-line error on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        settings = Settings(window=args.window, tau_loc=args.tau_loc, tau_stat=args.tau_stat, r_min=args.r_min,
                            n_fit=args.n_fit, min_populations=args.min_populations, min_accept=args.min_accept,
                            max_drift=args.max_drift, drift_z=args.drift_z, min_p=args.min_p,
                            kappa=args.kappa)
    except ValueError as error:
        return _error(str(error))
    if not Path(args.file).is_file():
        return _error(f"{args.file}: no such file")
    try:
        probes = read_hdf5(args.file, args.group)
    except (OSError, KeyError, ValueError) as error:  # not HDF5, no such group or attribute, unknown shaping
        return _error(f"{args.file}: {str(error).strip(chr(39) + chr(34))}")
    if not probes:
        return _error(f"{args.file}: no probe sets in group {args.group}/")
    result = scan(probes, settings)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"CLSS {'ok' if result.ok else 'FAIL'} (alpha={result.alpha:g}, kappa {result.kappa_source}): "
              f"{result.reason}")
        if result.slope == result.slope:  # a slope was fitted (not NaN)
            lo, hi = result.d_eff_ci
            print(f"d_eff = {result.d_eff:.4g} [{lo:.4g}, {hi:.4g}], slope S = {result.slope:.4g}")
        taus = ", ".join(f"N={p.population}: {p.relaxation:.3g}" for p in result.plateaus)
        if taus:
            print(f"relaxation time (steps) {taus}; the horizon spans {result.horizon_relaxations:.3g} of the longest")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
