"""Files that ship with es_hpc: the run configurations, found the same way in a wheel and in a source checkout."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def configs_dir() -> Path:
    """es_hpc/configs/ in an installed wheel (a copy of configs/), else the source tree's configs/."""
    packaged = PACKAGE / "configs"
    return packaged if packaged.is_dir() else PACKAGE.parent / "configs"


def config_path(name: str) -> str:
    """A --config argument as a path: itself when that file exists, else the same name under configs_dir().

    `configs/tiny.yaml`, `tiny.yaml` and `tiny` all find configs_dir()/tiny.yaml; a name found nowhere comes back
    unchanged, so that loading it reports the missing file."""
    path = Path(name)
    if path.is_file():
        return name
    if len(path.parts) > 1 and path.parts[0] == "configs":
        path = Path(*path.parts[1:])
    for candidate in (path, path.parent / (path.name + ".yaml")):
        found = configs_dir() / candidate
        if found.is_file():
            return str(found)
    return name
