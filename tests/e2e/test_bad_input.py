"""Bad input: one line naming the field, exit code 2, no traceback."""
import pytest

from helpers import run, train_cmd


@pytest.mark.parametrize("override, message", [
    ("es.sigma=0", "es.sigma: must be > 0"),
    ("es.sigma=-0.1", "es.sigma: must be > 0"),
    ("es.population=0", "es.population: must be > 0"),
    ("es.antithetic=true", "es.population: must be even"),
    ("es.sigmaa=0.1", "es.sigmaa: unknown key"),
    ("train.iterations=ten", "train.iterations: expected int"),
    ("model.path=./no/such/model", "model.path: no model at no/such/model"),
    ("train.prompts_per_iteration=100000", "train.prompts_per_iteration: 100000 exceeds the 9000 rows"),
])
def test_bad_config_one_line_exit_2(tiny_model_dir, tmp_path, override, message):
    sets = [override, "es.population=5"] if "antithetic" in override else [override]
    proc = run(train_cmd(tiny_model_dir, tmp_path / "r", sets), check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), proc.stderr
    assert "Traceback" not in proc.stderr


def test_existing_run_without_resume_and_resume_without_checkpoint(tiny_model_dir, tmp_path):
    (tmp_path / "r").mkdir()
    proc = run(train_cmd(tiny_model_dir, tmp_path / "r", resume=True), check=False)
    assert proc.returncode == 2 and "--resume: no complete checkpoint" in proc.stderr
    run(train_cmd(tiny_model_dir, tmp_path / "r", ["train.iterations=1"]))
    proc = run(train_cmd(tiny_model_dir, tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "already exists; pass --resume" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file(tmp_path):
    proc = run(["-m", "es_hpc", "train", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")], check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: config: file not found: {tmp_path / 'none.yaml'}"
