"""End to end: `python -m es_hpc bench --reduced --json` on the tiny model prints every figure of its report."""
import json
import math

import pytest
from transformers import AutoModelForCausalLM

from helpers import TINY_CONFIG, run

KEYS = {"overhead_ratio", "overhead_ratio_cpu", "iteration_seconds", "inference_seconds", "phases", "noise_share",
        "inference_seconds_by_rows_per_call", "members_per_call_batched", "perturbation", "peak_memory_batched_bytes",
        "speedup_fast_path", "speedup_batched", "peak_memory_inference_bytes", "peak_memory_es_bytes",
        "peak_memory_ratio", "peak_memory_ratio_without_master", "master_bytes",
        "perturb_restore_update_params_per_s", "memcpy_bytes_per_s", "memcpy_params_per_s", "perturbed_parameters", "population", "prompts"}
PHASES = {"noise", "perturb", "restore", "generate", "score", "exchange", "update", "log"}
# Timings and rates depend on the machine: each only has to be a real measurement (finite, > 0).
MEASURED = ("iteration_seconds", "inference_seconds", "overhead_ratio", "overhead_ratio_cpu", "noise_share",
            "speedup_fast_path", "speedup_batched", "perturb_restore_update_params_per_s", "memcpy_bytes_per_s",
            "memcpy_params_per_s")


@pytest.mark.parametrize("perturbation", ["isotropic", "lowrank"])
def test_reduced_bench_json(tiny_model_dir, perturbation):
    proc = run(["-m", "es_hpc", "bench", "--config", str(TINY_CONFIG), "--set", f"model.path={tiny_model_dir}",
                "--set", f"es.perturbation={perturbation}", "--reduced", "--json"])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= report.keys() and PHASES == report["phases"].keys()
    assert report["reduced"] and report["population"] == 4 and report["prompts"] == 8
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())  # es.params: all
    assert report["perturbed_parameters"] == n and report["master_bytes"] == 4 * n  # fp32 masters
    assert all(math.isfinite(v) and v >= 0 for v in report["phases"].values()) and report["phases"]["generate"] > 0
    assert all(math.isfinite(report[k]) and report[k] > 0 for k in MEASURED), {k: report[k] for k in MEASURED}
    assert report["perturbation"] == perturbation and report["members_per_call_batched"] == 4  # the whole population
    assert set(report["inference_seconds_by_rows_per_call"]) == {"8", "32"}  # one member's P rows; all 4 x 8
    assert report["peak_memory_es_bytes"] >= report["peak_memory_inference_bytes"] > 0  # a peak never falls
