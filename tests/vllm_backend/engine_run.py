"""Run by test_vllm_backend as a script (a second engine cannot start inside the session's process): the vLLM
backend on MODEL with tensor-parallel size TP beside the transformers backend on the same model, compared on
greedy completions (unperturbed and for two members, each at a scale that changes the transformers model's output)
and on the masters after an update, then with `each` every tensor perturbed alone (test_vllm_backend.each_tensor);
prints one JSON report.
    python engine_run.py MODEL TP [each]"""
import json
import sys

import numpy as np
import torch

from es_hpc import tasks
from es_hpc.backends.hf import HFBackend
from es_hpc.backends.vllm import VLLMBackend
from es_hpc.config import GenerationConfig, ModelConfig
from es_hpc.core.params import PerturbedParams, select

SEEDS = (11, 12)
SIGMAS = (0.02, 0.05, 0.2, 1.0)
PROMPTS = 16
UPDATE = ([21, 22, 23], [0.01, -0.02, 0.005])


def completions(backend, task, rows) -> tuple[list[str], list[float], int]:
    batch = backend.encode([task.prompt(r) for r in rows])
    texts, tokens = backend.generate(batch, task.max_new_tokens, 64)
    return texts, [float(task.reward(t, r)) for t, r in zip(texts, rows)], tokens


def member(pv, ph, v, h, task, rows, seed, base) -> dict:
    """One member at the first scale that changes the transformers completions (both left restored)."""
    for sigma in SIGMAS:
        ph.perturb(seed, sigma)
        hf = completions(h, task, rows)
        if hf[0] != base[0]:
            break
        ph.restore()
    pv.perturb(seed, sigma)
    vl = completions(v, task, rows)
    pv.restore()
    ph.restore()
    return {"seed": seed, "sigma": sigma, "changed": hf[0] != base[0], "texts_equal": vl[0] == hf[0],
            "rewards": vl[1], "hf_rewards": hf[1], "tokens": vl[2], "hf_tokens": hf[2]}


def main(path: str, tp: int, each: bool) -> None:
    v = VLLMBackend(ModelConfig(path=path, dtype="float32"),
                    GenerationConfig(backend="vllm", vllm_tensor_parallel_size=tp))
    h = HFBackend(ModelConfig(path=path, dtype="float32"), torch.device("cpu"))
    pv, ph = v.engine_params(["*"], "same"), PerturbedParams(select(h.named_parameters(), ["*"]))
    task = tasks.get("arithmetic")
    rows = task.rows("test")[:PROMPTS]
    base, base_h = completions(v, task, rows), completions(h, task, rows)
    report = {"unperturbed_equal": base[0] == base_h[0], "unperturbed_rewards": base[1],
              "members": [member(pv, ph, v, h, task, rows, s, base_h) for s in SEEDS],
              "restored_equal": completions(v, task, rows) == base,
              "ranks": {r: [[p.name, p.module, p.size, p.dst_offset, p.src_offset, list(p.src_stride)] for p in ps]
                        for r, ps in v.layout.pieces.items()}}
    for p in (pv, ph):
        p.update(np.array(UPDATE[0]), np.array(UPDATE[1]))
    sv, sh = pv.state_dict(), ph.state_dict()
    report.update(masters_equal=sv.keys() == sh.keys() and all(torch.equal(sv[n], sh[n]) for n in sh),
                  checksum_equal=pv.checksum() == ph.checksum(),
                  updated_equal=completions(v, task, rows)[0] == completions(h, task, rows)[0])
    if each:  # last: its selections of one tensor each replace pv's
        from test_vllm_backend import each_tensor

        report["each_gap"], report["each"] = each_tensor(v, h, rows[:4], task)
    print(json.dumps(report))


if __name__ == "__main__":  # vLLM's tensor-parallel workers are spawned: they re-import this file
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ["each"])
