"""The models that ship inside es_hpc: `model.path: embedded:NAME` names one of them.

Each is a save_pretrained directory whose `tiny_model.json` records the sha256 of every other file, written by
the recipe that made it (`python -m es_hpc make-tiny-model`); the files are checked against it when loaded, so
every machine runs the same model or stops with an error.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

PREFIX = "embedded:"
FACTS = "tiny_model.json"
HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The embedded models present in this installation."""
    return sorted(p.name for p in HERE.iterdir() if (p / FACTS).is_file())


def resolve(path: str) -> str:
    """`embedded:NAME` -> its directory; any other model.path unchanged. Unknown names raise ValueError."""
    if not path.startswith(PREFIX):
        return path
    name = path[len(PREFIX):]
    if name not in names():
        raise ValueError(f"no embedded model {name!r} (embedded models: {', '.join(names()) or 'none'})")
    return str(HERE / name)


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file of a model directory except the facts file itself, by file name."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(directory).iterdir()) if f.is_file() and f.name != FACTS}


def differing(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """The file names, sorted, whose digests differ between two {name: sha256} maps (absent from one counts)."""
    return sorted(name for name in set(recorded) | set(found) if recorded.get(name) != found.get(name))


def verify(directory: Path) -> None:
    """Raise ValueError naming the first file that differs from the sha256 its facts file records, if any."""
    facts = Path(directory) / FACTS
    if not facts.is_file():
        return
    recorded = json.loads(facts.read_text()).get("sha256")
    if recorded is None:
        return
    found = file_digests(directory)
    bad = differing(recorded, found)
    if bad:
        name = bad[0]
        what = "is missing" if name not in found else "is not recorded" if name not in recorded else "differs"
        raise ValueError(f"{Path(directory) / name} {what}: the model's files do not match the sha256 in {facts}")
