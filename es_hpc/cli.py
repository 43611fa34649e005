"""Command line: `python -m es_hpc SUBCOMMAND` (train, probe, clss, slq, bench, make-tiny-model, make-random-model,
export, config)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError
from .errors import EXIT_PREEMPTED, Diverged, PeerLost, Preempted
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
    from .tools.tiny_model import HIDDEN, LAYERS, SIZES, build_tiny_model

    if args.size and (args.hidden or args.layers):
        raise ConfigError("make-tiny-model: give --size or --hidden/--layers, not both")
    hidden, layers = SIZES[args.size] if args.size else (args.hidden or HIDDEN, args.layers or LAYERS)
    _check_shape("make-tiny-model", hidden, layers)
    facts_file = Path(args.out) / "tiny_model.json"
    if facts_file.is_file() and not args.force:
        print(f"tiny model already built at {args.out} (pass --force to rebuild)", file=sys.stderr)
        print(facts_file.read_text().strip())
        return
    print(json.dumps(build_tiny_model(Path(args.out), seed=args.seed, hidden=hidden, layers=layers)))


def _check_shape(command: str, hidden: int, layers: int) -> None:
    """A ConfigError unless the shape fits the family's 4 attention heads with an even (rotary) head size."""
    if hidden % 8 or hidden <= 0 or layers <= 0:
        raise ConfigError(f"{command}: --hidden must be a positive multiple of 8 (4 heads of even size) and "
                          f"--layers > 0, got {hidden} and {layers}")


def _make_random_model(args) -> None:
    from .tools.tiny_model import build_random_model

    _check_shape("make-random-model", args.hidden, args.layers)
    print(json.dumps(build_random_model(Path(args.out), args.hidden, args.layers, args.seed, args.family)))


def _config_show(args) -> None:
    from . import config, config_doc

    cfg = config.load(args.config, args.set, job=args.job)
    source = " ".join([args.config or "the defaults", *(f"--set {s}" for s in args.set)])
    print(config_doc.show(cfg, source), end="")


def _config_table(args) -> None:
    from . import config_doc

    if args.update is None:
        print(config_doc.table())
    elif config_doc.update_readme(args.update):
        print(f"updated the config table in {args.update}")


def _config_command(sub) -> None:
    """`config show` (the resolved config as YAML with every key's help) and `config table` (the README's)."""
    from .config import JOB_SECTIONS

    p = sub.add_parser("config", help="every config key with its help: show (a resolved config), table (README's)")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser("show", help="the resolved config as YAML, each key's type and help as a comment")
    s.add_argument("--config", type=config_path, default=None,
                   help="YAML config: a file, or a name under es_hpc's configs such as tiny (default: the defaults)")
    s.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    s.add_argument("--job", choices=sorted(JOB_SECTIONS), default=None,
                   help="check only the sections this job reads (default: every section)")
    s.set_defaults(func=_config_show)
    t = actions.add_parser("table", help="the README's table of config keys (markdown)")
    t.add_argument("--update", type=Path, default=None, metavar="README", help="rewrite the table in this file")
    t.set_defaults(func=_config_table)


def _export(args) -> None:
    from .tools.export import export

    print(json.dumps(export(Path(args.run_dir), Path(args.out), args.checkpoint)))


def _export_command(sub) -> None:
    """`export RUN_DIR --out DIR`: a train run's checkpoint as a from_pretrained folder with a model card."""
    e = sub.add_parser("export", help="a train run's checkpoint as a from_pretrained folder with a model card")
    e.add_argument("run_dir", help="run directory of a train job (its es_log.h5 and checkpoints/)")
    e.add_argument("--out", required=True, help="folder to write; must not exist")
    e.add_argument("--checkpoint", default="latest",
                   help="best (train.keep_best's), latest (the default) or iter_N")
    e.set_defaults(func=_export)


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
    t = _config_parser(sub, "train", "ES fine-tuning (Algorithm 1) with HDF5 log and checkpoints", "see configs/",
                       _train)
    t.epilog = "every config key, its default and help: python -m es_hpc config show [--config C] [--set ...]"
    t.add_argument("--out", required=True, help="run directory: log, checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    pr = _config_parser(sub, "probe", "reward probe (Appendix G): candidates per sigma on a fixed pool into HDF5",
                        "see configs/tiny_probe.yaml; its probe section", _probe)
    pr.add_argument("--out", required=True,
                    help="output directory; reruns resume (analysis: python -m analysis.best_of_n)")
    c = _config_parser(sub, "clss", "CLSS probe trajectories from a checkpoint (Algorithm 2 step 1) into HDF5",
                       "see configs/tiny_clss.yaml; its clss section", _clss)
    c.add_argument("--checkpoint", required=True, type=_checkpoint,
                   help="save_pretrained directory or embedded:NAME to probe (replaces model.path)")
    c.add_argument("--out", required=True,
                   help="output directory; the file is clss.file (fit: python -m analysis.clss)")
    s = _config_parser(sub, "slq", "Lanczos over a curvature operator of the model (Algorithm 3) into HDF5",
                       "see configs/tiny_slq.yaml; its slq section", _slq)
    s.add_argument("--checkpoint", required=True, type=_checkpoint,
                   help="save_pretrained directory or embedded:NAME to analyse (replaces model.path)")
    s.add_argument("--out", required=True,
                   help="output directory; the file is slq.file (analysis: python -m analysis.slq)")
    b = _config_parser(sub, "bench", "cost of an ES iteration against generation alone, phase by phase",
                       "see configs/tiny.yaml")
    b.add_argument("--json", action="store_true", help="one line of JSON")
    b.add_argument("--reduced", action="store_true", help="a small, fast measurement (CI checks its keys)")
    b.set_defaults(func=_bench)
    m = sub.add_parser("make-tiny-model", help="build an embedded tiny Qwen2 model and tokenizer (offline); "
                       "--size picks one of the family (m, the default, is embedded:tiny)")
    m.add_argument("--out", required=True, help="directory to write (save_pretrained layout)")
    m.add_argument("--size", choices=["xs", "s", "m", "l"], default=None,
                   help="xs 0.15M, s 0.42M, m 1.06M (embedded:tiny), l 2.38M parameters (embedded:tiny-SIZE)")
    m.add_argument("--hidden", type=int, default=None, help="explicit hidden size (4 heads; default 128)")
    m.add_argument("--layers", type=int, default=None, help="explicit number of layers (default 4)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--force", action="store_true", help="rebuild even if OUT already holds a built model")
    m.set_defaults(func=_make_tiny_model)
    r = sub.add_parser("make-random-model", help="the tiny model's tokenizer with a random model of a family "
                       "(qwen2: the tiny model's architecture) at another size")
    r.add_argument("--out", required=True)
    r.add_argument("--family", choices=["qwen2", "llama", "gemma"], default="qwen2",
                   help="qwen2 (tied head, qkv biases), llama (grouped-query attention, untied head), gemma "
                        "(multi-query attention, GeGLU, (1 + w) norms, scaled embedding)")
    r.add_argument("--hidden", type=int, default=512)
    r.add_argument("--layers", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=_make_random_model)
    _export_command(sub)
    _config_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except USAGE_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FloatingPointError, Diverged, PeerLost) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Preempted as exc:
        print(f"preempted: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def run() -> None:
    """`python -m es_hpc` and the `es-hpc` script: main(), then exit with its code."""
    sys.exit(main())
