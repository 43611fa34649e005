"""The recipe that made the embedded models: `make-tiny-model --size xs` (the family's smallest, the fastest build)
builds a model that records its digests and shape, passes its own check, stops inside its target window and
tokenizes with the same files as the one that ships; a bad shape is refused in one line."""
import json

from helpers import run
from es_hpc import models
from es_hpc.backends import model_path
from es_hpc.tools.tiny_model import TARGET


def test_make_tiny_model_reproduces_the_recipe(tmp_path):
    out = tmp_path / "tiny-xs"
    proc = run(["-m", "es_hpc", "make-tiny-model", "--out", str(out), "--size", "xs"])
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["sha256"] == models.file_digests(out) and model_path.resolve(str(out)) == str(out)
    assert TARGET[0] <= facts["val_accuracy"] <= TARGET[1]
    assert (facts["size"], facts["hidden"], facts["layers"]) == ("xs", 48, 4)
    shipped = json.loads((models.HERE / "tiny-xs" / "tiny_model.json").read_text())
    same_files = ("tokenizer.json", "chat_template.jinja")  # no floating point in them: equal on every machine
    assert all(facts["sha256"][f] == shipped["sha256"][f] for f in same_files)
    differ = {f for f in shipped["sha256"] if facts["sha256"][f] != shipped["sha256"][f]}
    assert set(facts["differs_from_embedded"]) == differ
    again = run(["-m", "es_hpc", "make-tiny-model", "--out", str(out)])  # an existing build is kept, not redone
    assert "already built" in again.stderr and json.loads(again.stdout)["sha256"] == facts["sha256"]


def test_make_tiny_model_refuses_a_bad_shape(tmp_path):
    proc = run(["-m", "es_hpc", "make-tiny-model", "--out", str(tmp_path / "m"), "--size", "s", "--hidden", "64"],
               check=False)
    assert proc.returncode == 2 and "not both" in proc.stderr.strip().splitlines()[-1]
    for command in ("make-tiny-model", "make-random-model"):
        proc = run(["-m", "es_hpc", command, "--out", str(tmp_path / "m"), "--hidden", "36"], check=False)
        assert proc.returncode == 2 and "multiple of 8" in proc.stderr.strip().splitlines()[-1]
        assert not (tmp_path / "m").exists()
