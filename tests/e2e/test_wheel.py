"""`pip install .` from a clean checkout: scikit-build-core builds the native noise library through CMakeLists.txt
into a wheel that also carries every file of es_hpc/ and analysis/, the configs (as es_hpc/configs) and the es-hpc
script; installed on its own, it runs from outside the source tree."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import REPO, run


# Planted in the clean copy: a library built in-tree is never packaged, the wheel's come from the CMake install.
STALE = "es_hpc/_native/libes_philox_noise_cuda.so"
# Run by the installed wheel: where es_hpc comes from, its noise implementation, and its packaged configs.
PROBE = """
import json
import es_hpc
from es_hpc import config, resources
from es_hpc.core.noise import NoiseSource
configs = list(resources.configs_dir().rglob("*.yaml"))
for path in configs:
    config.load(path)
print(json.dumps({"package": es_hpc.__file__, "noise": NoiseSource("cpu").implementation,
                  "configs": sorted(str(p.relative_to(resources.configs_dir())) for p in configs),
                  "tiny": [resources.config_path(n) for n in ("tiny", "tiny.yaml", "configs/tiny.yaml")],
                  "missing": resources.config_path("no-such-config")}))
"""


def _need_compiler() -> None:
    """Skip (fail under ES_HPC_REQUIRE_NATIVE=1) where no C++ compiler can build the wheel's library."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        reason = "no C++ compiler: the wheel's native noise library not built"
        if os.environ.get("ES_HPC_REQUIRE_NATIVE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _clean_copy(dest: Path) -> list[str]:
    """Copy the files a commit of this checkout would hold (tracked and new, not ignored) to dest; their names."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no clean copy to build from")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
    names = [n for n in listing.split("\0") if n and (REPO / n).is_file()]  # a tracked file deleted here is left out
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return names


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[list[str], Path, Path]:
    """The clean copy's file names, the wheel built from it, and the directory it is installed into (--target)."""
    _need_compiler()
    tmp = tmp_path_factory.mktemp("wheel")
    names = _clean_copy(tmp / "src")
    (tmp / "src" / STALE).parent.mkdir(parents=True, exist_ok=True)
    (tmp / "src" / STALE).write_bytes(b"stale")
    # without the CUDA kernel (minutes of nvcc, and it needs a GPU to load): the CPU library is the one checked here
    run(["-m", "pip", "wheel", "-q", "--no-deps", "-C", "cmake.define.ES_HPC_CUDA=OFF", "-w", str(tmp / "dist"),
         str(tmp / "src")])
    wheel, = (tmp / "dist").glob("es_hpc-*.whl")
    run(["-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp / "site"), str(wheel)])
    return names, wheel, tmp / "site"


def test_wheel_holds_the_packages_configs_library_and_script(built):
    names, wheel, _ = built
    with zipfile.ZipFile(wheel) as whl:
        members = set(whl.namelist())
        entry_points, = [whl.read(m).decode() for m in members if m.endswith(".dist-info/entry_points.txt")]
    packaged = {n for n in names if n.startswith(("es_hpc/", "analysis/"))}
    packaged |= {f"es_hpc/{n}" for n in names if n.startswith("configs/")}
    assert packaged - members == set()
    assert "es_hpc/_native/libes_philox_noise.so" in members and STALE not in members
    assert "es-hpc = es_hpc.cli:run" in entry_points.splitlines()


def test_installed_wheel_runs_outside_the_source_tree(built, tmp_path):
    _, _, site = built
    # -S: no site hooks, so the editable es_hpc of this venv (a .pth) stays out; the venv's packages come after
    # the wheel on PYTHONPATH
    paths = dict.fromkeys([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {k: v for k, v in os.environ.items() if k not in ("ES_HPC_NATIVE_DIR", "ES_HPC_NOISE")}
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(env, PYTHONPATH=os.pathsep.join(paths)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    configs = site / "es_hpc" / "configs"
    assert Path(found["package"]).parent == site / "es_hpc"
    assert found["noise"] == "native-openmp"
    assert found["configs"] == sorted(str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml"))
    assert found["tiny"] == [str(configs / "tiny.yaml")] * 3 and found["missing"] == "no-such-config"
