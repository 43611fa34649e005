"""Command line: `python -m es_hpc SUBCOMMAND` (train, probe, clss, slq, bench, make-tiny-model, make-random-model)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError
from .errors import EXIT_PREEMPTED, Diverged, Preempted
from .resources import config_path

USAGE_ERRORS = (ConfigError, FileExistsError, FileNotFoundError)


def _job(args) -> None:
    """Load and validate the config, run the job (`args.job`); rank 0 prints its summary as one JSON line."""
    from . import config

    summary = args.job(config.load(args.config, args.set, job=args.command), args)
    if summary is not None:
        print(json.dumps({"summary": summary}))


def _train(cfg, args):
    from .jobs import train

    return train.run(cfg, Path(args.out), resume=args.resume)


def _probe(cfg, args):
    from .jobs import probe

    return probe.run(cfg, Path(args.out))


def _clss(cfg, args):
    from .jobs import clss

    return clss.run(cfg, args.checkpoint, Path(args.out))


def _slq(cfg, args):
    from .jobs import slq

    return slq.run(cfg, args.checkpoint, Path(args.out))


def _bench(args) -> None:
    from . import config
    from .jobs import bench

    cfg = config.load(args.config, args.set, job="bench")
    report = bench.run(cfg, reduced=args.reduced)
    print(json.dumps(report, indent=None if args.json else 2))


def _make_tiny_model(args) -> None:
    from .tools.tiny_model import build_tiny_model

    facts_file = Path(args.out) / "tiny_model.json"
    if facts_file.is_file() and not args.force:
        print(f"tiny model already built at {args.out} (pass --force to rebuild)", file=sys.stderr)
        print(facts_file.read_text().strip())
        return
    print(json.dumps(build_tiny_model(Path(args.out), seed=args.seed)))


def _make_random_model(args) -> None:
    from .tools.tiny_model import build_random_model

    print(json.dumps(build_random_model(Path(args.out), args.hidden, args.layers, args.seed)))


def _checkpoint(arg: str) -> Path:
    """--checkpoint: a save_pretrained directory, or embedded:NAME for a model that ships with es_hpc."""
    from . import models

    try:
        return Path(models.resolve(arg))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config_parser(sub, name: str, help: str, config: str, job=None):
    """A subcommand that reads a YAML config (`--config`, `--set` overrides); `job` runs it through _job."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--config", required=True, type=config_path,
                   help=f"YAML config: a file, or a name under es_hpc's configs such as tiny ({config})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    if job is not None:
        p.set_defaults(func=_job, job=job)
    return p


def parser() -> argparse.ArgumentParser:
    prog = "es-hpc" if Path(sys.argv[0]).name == "es-hpc" else "python -m es_hpc"  # the console script or -m
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = _config_parser(sub, "train", "ES fine-tuning (Algorithm 1) with HDF5 log and checkpoints", "see configs/", _train)
    t.add_argument("--out", required=True, help="run directory: log, checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    pr = _config_parser(sub, "probe", "reward probe (Appendix G): candidates per sigma on a fixed pool into HDF5",
                        "see configs/tiny_probe.yaml; its probe section", _probe)
    pr.add_argument("--out", required=True, help="output directory; reruns resume (analysis: python -m analysis.best_of_n)")
    c = _config_parser(sub, "clss", "CLSS probe trajectories from a checkpoint (Algorithm 2 step 1) into HDF5",
                       "see configs/tiny_clss.yaml; its clss section", _clss)
    c.add_argument("--checkpoint", required=True, type=_checkpoint,
                   help="save_pretrained directory or embedded:NAME to probe (replaces model.path)")
    c.add_argument("--out", required=True, help="output directory; the file is clss.file (fit: python -m analysis.clss)")
    s = _config_parser(sub, "slq", "Lanczos over a curvature operator of the model (Algorithm 3) into HDF5",
                       "see configs/tiny_slq.yaml; its slq section", _slq)
    s.add_argument("--checkpoint", required=True, type=_checkpoint,
                   help="save_pretrained directory or embedded:NAME to analyse (replaces model.path)")
    s.add_argument("--out", required=True, help="output directory; the file is slq.file (analysis: python -m analysis.slq)")
    b = _config_parser(sub, "bench", "cost of an ES iteration against generation alone, phase by phase",
                       "see configs/tiny.yaml")
    b.add_argument("--json", action="store_true", help="one line of JSON")
    b.add_argument("--reduced", action="store_true", help="a small, fast measurement (CI checks its keys)")
    b.set_defaults(func=_bench)
    m = sub.add_parser("make-tiny-model", help="build the embedded tiny Qwen2 model and tokenizer (offline)")
    m.add_argument("--out", required=True, help="directory to write (save_pretrained layout)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--force", action="store_true", help="rebuild even if OUT already holds a built model")
    m.set_defaults(func=_make_tiny_model)
    r = sub.add_parser("make-random-model", help="the tiny model's architecture at another size, random weights")
    r.add_argument("--out", required=True)
    r.add_argument("--hidden", type=int, default=512)
    r.add_argument("--layers", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=_make_random_model)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except USAGE_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FloatingPointError, Diverged) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Preempted as exc:
        print(f"preempted: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def run() -> None:
    """`python -m es_hpc` and the `es-hpc` script: main(), then exit with its code."""
    sys.exit(main())
