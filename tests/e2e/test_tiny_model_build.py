"""The recipe that made the embedded model: `make-tiny-model` builds a model that records its digests, passes its
own check, stops inside its target window and tokenizes with the same files as the one that ships."""
import json

from helpers import run
from es_hpc import models
from es_hpc.backends import model_path
from es_hpc.tools.tiny_model import TARGET


def test_make_tiny_model_reproduces_the_recipe(tmp_path, tiny_model_dir):
    out = tmp_path / "tiny"
    proc = run(["-m", "es_hpc", "make-tiny-model", "--out", str(out)])
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["sha256"] == models.file_digests(out) and model_path.resolve(str(out)) == str(out)
    assert TARGET[0] <= facts["val_accuracy"] <= TARGET[1]
    shipped = json.loads((tiny_model_dir / "tiny_model.json").read_text())
    same_files = ("tokenizer.json", "chat_template.jinja")  # no floating point in them: equal on every machine
    assert all(facts["sha256"][f] == shipped["sha256"][f] for f in same_files)
    assert set(facts["differs_from_embedded"]) == {f for f in shipped["sha256"] if facts["sha256"][f] != shipped["sha256"][f]}
    again = run(["-m", "es_hpc", "make-tiny-model", "--out", str(out)])  # an existing build is kept, not redone
    assert "already built" in again.stderr and json.loads(again.stdout)["sha256"] == facts["sha256"]
