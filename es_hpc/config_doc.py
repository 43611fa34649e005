"""The config's documentation, generated from its one source, the dataclasses of es_hpc.config: every key's type,
default and help (`describe`), a resolved config as YAML with each key's help as a comment (`python -m es_hpc
config show`) and the README's table of keys (`python -m es_hpc config table`)."""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Literal

import yaml

from .config import BOUNDS, Config, ConfigError

TABLE_BEGIN = "<!-- generated from es_hpc/config.py by `python -m es_hpc config table --update README.md` -->"
TABLE_END = "<!-- end of the config table -->"


def describe() -> list[tuple[str, str, str, str]]:
    """(dotted name, type with choices and bounds, default as JSON, help) of every field, for listings like --help."""
    rows = []
    for section, cls in typing.get_type_hints(Config).items():
        hints, defaults = typing.get_type_hints(cls), cls()
        for f in dataclasses.fields(cls):
            origin, args = typing.get_origin(hints[f.name]), typing.get_args(hints[f.name])
            text = " | ".join(args) if origin is Literal else f"list[{args[0].__name__}]" if origin is list else None
            bounds = ", ".join(f"{op} {f.metadata[k]}" for k, (op, _) in BOUNDS.items() if k in f.metadata)
            bounds = f" ({'each ' if origin is list else ''}{bounds})" if bounds else ""
            text = (text or hints[f.name].__name__) + bounds
            rows.append((f"{section}.{f.name}", text, json.dumps(getattr(defaults, f.name)), f.metadata["help"]))
    return rows


def _flow(value) -> str:
    """`value` as YAML on one line (a plain or quoted scalar, or a flow list / mapping) that reads back the same."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
    return text.removesuffix("...\n").strip()


def show(cfg: Config, source: str) -> str:
    """`cfg` as YAML, each key followed by `# type: help`; `--config` reads the text back to an equal Config."""
    docs = {name: (typ, text) for name, typ, _, text in describe()}
    lines = [f"# es_hpc config resolved from {source}: every key, its value, then # type: help",
             "# (python -m es_hpc config show; train --config FILE reads this file back)"]
    for section, values in dataclasses.asdict(cfg).items():
        lines.append(f"{section}:")
        for key, value in values.items():
            typ, text = docs[f"{section}.{key}"]
            lines.append(f"  {key}: {_flow(value)}  # {typ}: {text}")
    return "\n".join(lines) + "\n"


def table() -> str:
    """The README's table of config keys: one row per key with its type, default and help, between the markers."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [f"| `{name}` | {cell(typ)} | `{cell(default)}` | {cell(text)} |" for name, typ, default, text in describe()]
    return "\n".join([TABLE_BEGIN, "", "| key | type | default | help |", "|---|---|---|---|", *rows, "", TABLE_END])


def readme_table(text: str, path: Path) -> tuple[int, int]:
    """Where the generated table stands in a README's `text`: (start of TABLE_BEGIN, end of TABLE_END)."""
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ConfigError(f"config table: {path} has no '{TABLE_BEGIN}' ... '{TABLE_END}' section")
    return start, end + len(TABLE_END)


def update_readme(path: Path) -> bool:
    """Rewrite the README's generated table from the config's dataclasses; True when it changed."""
    text = Path(path).read_text()
    start, end = readme_table(text, path)
    new = text[:start] + table() + text[end:]
    if new != text:
        Path(path).write_text(new)
    return new != text
