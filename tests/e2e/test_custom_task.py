"""Tasks from outside es_hpc through the train CLI: a `module:Class` task whose reward raises on some prompts and
hangs on others trains to the end, those rewards scoring 0 and counted in train/reward_errors and in one line per
iteration; a bad task.name is one line and exit 2; the README's prompt_answer example runs."""
import sys

import h5py
import numpy as np
import pytest

from es_hpc import tasks
from helpers import REPO, run, train_cmd

MODULE = '''
from es_hpc.tasks.arithmetic import Arithmetic


def failure(row):
    """How the reward of `row` fails: by its first operand a, "raise" when a % 4 == 0, "hang" when a % 4 == 1."""
    return {0: "raise", 1: "hang"}.get(int(row["question"].split("+")[0]) % 4)


class FlakySums(Arithmetic):
    def reward(self, completion, row):
        if failure(row) == "raise":
            raise ZeroDivisionError("a reward with a bug")
        while failure(row) == "hang":
            pass
        return super().reward(completion, row)
'''
SMALL = ["train.iterations=2", "es.population=4", "train.prompts_per_iteration=8", "train.eval_every=0",
         "train.drift_every=0", "train.checkpoint_every=0", "generation.max_new_tokens=4"]


def sets(assignments) -> list[str]:
    return [a for s in assignments for a in ("--set", s)]


FLAKY = [*SMALL, "task.name=flaky_sums:FlakySums", "task.reward_timeout=0.5"]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """A folder holding the task module, on PYTHONPATH for the runs and on sys.path here."""
    where = tmp_path_factory.mktemp("tasks")
    (where / "flaky_sums.py").write_text(MODULE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(where))
        mp.syspath_prepend(str(where))
        yield where


@pytest.fixture(scope="module")
def flaky_run(tiny_model_dir, tmp_path_factory, task_dir):
    out = tmp_path_factory.mktemp("run") / "r"
    proc = run(train_cmd(tiny_model_dir, out, FLAKY))
    import flaky_sums
    return out, proc, flaky_sums.failure


def test_raising_and_hanging_rewards_score_0_and_are_counted(flaky_run):
    out, proc, failure = flaky_run
    train = tasks.get("arithmetic").rows("train")  # FlakySums keeps Arithmetic's options and rows
    with h5py.File(out / "es_log.h5", "r") as f:
        assert f.attrs["task"] == "flaky_sums:FlakySums" and f["train/iteration"][:].tolist() == [0, 1]
        ids, errors = f["train/prompt_ids"][:], f["train/reward_errors"][:]
        bits = np.unpackbits(f["train/prompt_bits"][:], axis=2)[:, :, :8]  # (iteration, member, prompt)
        rewards = f["train/rewards"][:]
    kinds = [[failure(train[i]) for i in row] for row in ids.tolist()]
    assert {"raise", "hang"} <= {k for row in kinds for k in row}  # both kinds of failure were drawn
    n = 4
    assert errors.tolist() == [n * sum(k is not None for k in row) for row in kinds]  # every member, every failure
    failing = np.array([[k is not None for k in row] for row in kinds])
    assert not bits[np.broadcast_to(failing[:, None, :], bits.shape)].any()  # those prompts scored 0 for everyone
    assert np.all(rewards <= 1 - failing.mean(1, keepdims=True) + 1e-6)
    for t, count in enumerate(errors.tolist()):
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"iter  {t:5d}  {count} reward(s) raised"))
        assert "ran past task.reward_timeout" in line and "rank 0's last: " in line


def test_two_ranks_score_and_count_as_one_process(flaky_run, tiny_model_dir, tmp_path):
    """Each rank scores its own members in its own worker; the N rewards and the failed-reward counts, summed over
    the ranks, are the single process's."""
    out, _, _ = flaky_run
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = run(train_cmd(tiny_model_dir, tmp_path / "two", FLAKY), launcher=torchrun)
    assert "2 rank(s)" in proc.stdout
    with h5py.File(tmp_path / "two" / "es_log.h5", "r") as f, h5py.File(out / "es_log.h5", "r") as g:
        assert f["train/reward_errors"][:].tolist() == g["train/reward_errors"][:].tolist()
        assert np.array_equal(f["train/rewards"][:], g["train/rewards"][:])
        assert np.array_equal(f["train/prompt_bits"][:], g["train/prompt_bits"][:])


def test_a_task_that_cannot_be_imported_is_one_line_naming_task_name(tiny_model_dir, tmp_path):
    proc = run(train_cmd(tiny_model_dir, tmp_path / "r", [*SMALL, "task.name=no_such_es_module:Task"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: task.name: cannot import module 'no_such_es_module' (ModuleNotFoundError: "
                                   "No module named 'no_such_es_module')")


def test_the_readme_prompt_answer_example_runs(tiny_model_dir, tmp_path):
    out = tmp_path / "pa"
    run(["-m", "es_hpc", "train", "--config", str(REPO / "configs" / "examples" / "prompt_answer.yaml"),
         "--out", str(out), *sets([f"model.path={tiny_model_dir}", "train.iterations=2", "es.population=4",
                                   "train.eval_every=2"])])
    with h5py.File(out / "es_log.h5", "r") as f:
        assert f.attrs["task"] == "prompt_answer" and f["train/rewards"].shape == (2, 4)
        assert f["train/reward_errors"][:].tolist() == [0, 0] and f["eval/reward"].shape == (2,)
        assert np.all((f["train/rewards"][:] >= 0) & (f["train/rewards"][:] <= 1))
