"""make-random-model --family through the CLI: a tiny model of each family (hidden 64, 2 layers) trains 2 iterations
with the transformers backend, with isotropic and with low-rank noise; each run completes, logs 2 iterations of
finite rewards with baseline drift 0, and its checkpoint is a model of that family."""
import json

import h5py
import numpy as np
import pytest
from transformers import AutoConfig

from helpers import run, train_cmd

FAMILIES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM", "gemma": "GemmaForCausalLM"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_model(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "model"
    proc = run(["-m", "es_hpc", "make-random-model", "--family", request.param, "--out", str(out),
                "--hidden", "64", "--layers", "2"])
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (facts["family"], facts["hidden"], facts["layers"]) == (request.param, 64, 2)
    return request.param, out


@pytest.mark.parametrize("perturbation", ["isotropic", "lowrank"])
def test_two_iterations_on_each_family(family_model, perturbation, tmp_path):
    family, model = family_model
    out = tmp_path / "run"
    run(train_cmd(model, out, [f"es.perturbation={perturbation}", "es.rank=2", "train.eval_prompts=8"]))
    with h5py.File(out / "es_log.h5", "r") as f:
        assert f.attrs["perturbation"] == perturbation
        assert f["train/iteration"][:].tolist() == [0, 1]
        rewards = f["train/rewards"][:]
        assert rewards.shape == (2, 4) and np.isfinite(rewards).all()
        assert np.array_equal(f["train/baseline_drift"][:], [0, 0])  # measured every iteration (drift_every=1)
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    assert AutoConfig.from_pretrained(latest).architectures == [FAMILIES[family]]
