"""Every config in configs/ loads and validates; the paper's configs carry its settings (ES training: N=30,
sigma=1e-3, alpha=5e-4, greedy, 512 new tokens, bf16; the probe of Appendix G) and valid task options."""
from pathlib import Path

import pytest

from es_hpc import config, tasks

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
PAPER = sorted((CONFIGS / "paper").glob("*.yaml"))
SIZES = ("0.5B", "1.5B", "3B", "7B")


def test_the_paper_configs_are_there():
    names = {p.stem for p in PAPER}
    assert {f"train_{t}" for t in ("gsm8k", "arc_challenge", "winogrande", "countdown")} <= names
    assert {f"probe_{t}" for t in ("gsm8k", "arc_challenge", "winogrande")} <= names


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_every_config_loads_validates_and_names_a_task(path):
    cfg = config.load(path)
    tasks.check_options(cfg.task.name, cfg.task.options)
    assert config.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("path", PAPER, ids=[p.name for p in PAPER])
def test_paper_settings(path):
    cfg = config.load(path)
    assert cfg.model.path in {f"Qwen/Qwen2.5-{s}-Instruct" for s in SIZES}
    assert cfg.model.dtype == "bfloat16" and not cfg.model.trust_remote_code
    assert cfg.generation.max_new_tokens == 512 and cfg.generation.backend == "transformers"  # greedy
    assert cfg.task.name in tasks.TASKS and cfg.task.options["path"] == tasks.TASKS[cfg.task.name].default_path
    if path.stem.startswith("train_"):
        assert (cfg.es.population, cfg.es.sigma, cfg.es.alpha) == (30, 1e-3, 5e-4)
        assert cfg.train.keep_best and cfg.train.select_split == "val" and cfg.train.eval_split == "test"
    else:
        p = cfg.probe
        assert p.sigmas == [3e-4, 1e-3, 3e-3]  # floats: coerced at load
        assert (p.candidates, p.pool_size, p.pool_seed, p.base_seed, p.split) == (240, 320, 0, 1234, "train")
        if tasks.TASKS[cfg.task.name].default_splits["val"] is None:  # the pool comes from the published train
            assert cfg.task.options["val_size"] == 0                  # split: nothing carved out of it


def test_model_dtype_auto_is_bf16_on_gpu_fp32_on_cpu():
    import torch

    from es_hpc.backends.hf import resolve_dtype

    assert config.Config().model.dtype == "auto"
    assert resolve_dtype("auto", torch.device("cuda", 0)) == "bfloat16"  # the paper's setting (G.1)
    assert resolve_dtype("auto", torch.device("cpu")) == "float32"
    assert resolve_dtype("float16", torch.device("cuda", 0)) == "float16"
