"""`python -m analysis.reproduce RUN --report DIR`: the reproduction report of a `launch/reproduce.sh` run.

Reads RUN's completed stages (probe-SIZE/, moments-SIZE/, train-NN/, slq-SIZE/, each with a .done marker, and
stages.tsv), decides every claim by the rules of analysis/reproduce/claims.py, and writes DIR/reproduction.md and
DIR/figures/reproduce_*.png. Prints the claims table's verdicts, one line each.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import claims, figures, measure, report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the run directory of launch/reproduce.sh")
    p.add_argument("--report", type=Path, required=True, help="directory for reproduction.md and figures/")
    args = p.parse_args(argv)
    run, out = args.run.resolve(), args.report.resolve()
    if not (run / "plan").is_file():
        print(f"error: {run}: not a launch/reproduce.sh run directory (no plan file)", file=sys.stderr)
        return 2
    try:
        m = measure.measure(run)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {run}: a stage's file is unreadable ({exc})", file=sys.stderr)
        return 2
    table = claims.all_claims(m)
    path = report.write(run, out, m, table, figures.draw_all(m, out / "figures"))
    for c in table:
        print(f"{c['verdict']:>14}  {c['claim']} ({c['figure']})")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
