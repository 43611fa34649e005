"""Rewards that fail safely (es_hpc/eval/rewards.py): every way a reward can fail scores 0 for that completion
and is counted, the other completions keep their rewards and order, and nothing stops or hangs the caller."""
import pickle

import numpy as np
import pytest

from es_hpc import tasks
from es_hpc.config import ConfigError
from es_hpc.eval.rewards import Rewards, isolated

MODULE = '''
import os
import time

from es_hpc.tasks.arithmetic import Arithmetic


class Flaky(Arithmetic):
    """Arithmetic's reward, except for completions that name a way to fail."""

    def reward(self, completion, row):
        if completion == "raise":
            raise ValueError("bad completion")
        if completion == "loop":  # pure Python: the worker's alarm stops it
            while True:
                pass
        if completion == "swallow":  # catches the alarm too: only killing the worker stops it
            while True:
                try:
                    time.sleep(60)
                except BaseException:
                    pass
        if completion == "exit":
            os._exit(3)
        if completion == "sys.exit":
            raise SystemExit(0)
        if completion == "nan":
            return float("nan")
        if completion == "text":
            return "one"
        return super().reward(completion, row)


class Unpicklable(Arithmetic):
    def __init__(self):
        super().__init__(digits=1, n_val=5, n_test=5)
        self.hook = lambda: None
'''
ROW = {"question": "1+2=", "answer": "3"}
FAILURES = {"raise": "ValueError: bad completion", "loop": "ran past task.reward_timeout (0.5 s)",
            "swallow": "ran past task.reward_timeout (0.5 s) and was killed",
            "exit": "the reward worker process died while scoring it", "sys.exit": "SystemExit: 0",
            "nan": "returned nan, not a finite number", "text": "ValueError: could not convert string to float"}


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "flaky_es_task.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_rewards_run_in_process_and_a_raising_one_scores_0():
    task = tasks.get("arithmetic", digits=1, n_val=5, n_test=5)
    rewards = Rewards(task, timeout=0.5)
    assert not isolated(task) and rewards.worker is None  # the fast path: no process, no pickling
    got = rewards(["3", " 3\n", "4", "3"], [ROW, ROW, ROW, {"question": "1+2="}])  # the last row has no answer
    assert got.tolist() == [1.0, 1.0, 0.0, 0.0] and got.dtype == np.float64
    assert rewards.errors == 1 and rewards.last_error == "KeyError: 'answer'"
    assert rewards([], []).shape == (0,) and rewards.errors == 1


def test_every_failure_of_an_outside_reward_scores_0_and_is_counted(module):
    task = tasks.get("flaky_es_task:Flaky", digits=1, n_val=5, n_test=5)
    rewards = Rewards(task, timeout=0.5)
    assert isolated(task) and rewards.worker is not None
    texts = ["3"]
    for failure in FAILURES:
        texts += [failure, "3", "4"]  # after each failure: a right and a wrong answer, still scored
    got = rewards(texts, [ROW] * len(texts))
    assert got.tolist() == [1.0] + [0.0, 1.0, 0.0] * len(FAILURES)
    assert rewards.errors == len(FAILURES)
    assert rewards(["3", "nan"], [ROW, ROW]).tolist() == [1.0, 0.0] and rewards.errors == len(FAILURES) + 1
    assert rewards.last_error == FAILURES["nan"]


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_names_its_reason(module, failure):
    rewards = Rewards(tasks.get("flaky_es_task:Flaky", digits=1, n_val=5, n_test=5), timeout=0.5)
    assert rewards([failure, "3"], [ROW, ROW]).tolist() == [0.0, 1.0]
    assert rewards.errors == 1 and rewards.last_error.startswith(FAILURES[failure])


def test_a_regex_from_the_config_is_stopped_at_the_timeout(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "p", "answer": "a"}\n' * 4)
    task = tasks.get("prompt_answer", path=str(path), reward="regex", pattern=r"(a+)+$", val_size=1, test_size=1)
    rewards = Rewards(task, timeout=0.5)
    assert isolated(task)
    got = rewards(["a" * 40 + "b", "xa"], [{"answer": "a"}] * 2)  # catastrophic backtracking, then a match
    assert got.tolist() == [0.0, 1.0] and rewards.errors == 1 and "ran past" in rewards.last_error


def test_a_task_the_worker_cannot_have_is_a_config_error(module):
    with pytest.raises(ConfigError, match=r"^task.name: Unpicklable cannot be sent to the reward worker process "):
        Rewards(tasks.get("flaky_es_task:Unpicklable"), timeout=1.0)
    rewards = Rewards(tasks.get("flaky_es_task:Flaky", digits=1, n_val=5, n_test=5), timeout=1.0)
    (module / "flaky_es_task.py").unlink()  # gone before the worker starts: it cannot import the class
    with pytest.raises(ConfigError, match=r"^task.name: the reward worker process cannot load the task "
                                          r"\(ModuleNotFoundError: No module named 'flaky_es_task'\)"):
        rewards(["3"], [ROW])


def test_the_worker_gets_the_rules_without_the_rows(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(f'{{"prompt": "p{i}", "answer": "{i}"}}\n' for i in range(50)))
    task = tasks.get("prompt_answer", path=str(path), reward="regex", pattern=r"(\d+)", val_size=1, test_size=1)
    assert len(task.rows("train")) == 48
    assert pickle.loads(pickle.dumps(task))._splits is None
    assert Rewards(task, timeout=1.0)(["it is 7", "8"], [{"answer": "7"}] * 2).tolist() == [1.0, 0.0]
