"""The arithmetic task: fixed disjoint splits, exact-match reward, chat prompts, and the task registry."""
import re

import pytest

from es_hpc import tasks


@pytest.fixture(scope="module")
def task():
    return tasks.get("arithmetic")


def test_splits_are_deterministic_disjoint_and_cover_all_pairs(task):
    sizes = {s: len(task.rows(s)) for s in tasks.SPLITS}
    assert sizes == {"train": 9000, "val": 500, "test": 500}
    again = tasks.get("arithmetic")
    for s in tasks.SPLITS:
        assert task.rows(s) == again.rows(s)
    questions = [set(r["question"] for r in task.rows(s)) for s in tasks.SPLITS]
    assert sum(map(len, questions)) == 10_000 == len(set.union(*questions))
    assert task.rows("test") != tasks.get("arithmetic", seed=1).rows("test")


def test_rows_are_copies(task):
    task.rows("val")[0]["answer"] = "x"
    assert task.rows("val")[0]["answer"] != "x"


def test_question_format_and_answer(task):
    for row in task.rows("train")[:200] + task.rows("test"):
        m = re.fullmatch(r"(0|[1-9]\d?)\+(0|[1-9]\d?)=", row["question"])
        assert m, row
        assert row["answer"] == str(int(m[1]) + int(m[2]))
    assert task.max_new_tokens == 4  # "198" and the end token


def test_options():
    small = tasks.get("arithmetic", digits=1, seed=3, n_val=10, n_test=20)
    assert [len(small.rows(s)) for s in ("train", "val", "test")] == [70, 10, 20]
    assert small.max_new_tokens == 3
    with pytest.raises(ValueError):
        tasks.get("arithmetic", digits=1, n_val=50, n_test=50)


@pytest.mark.parametrize("completion,expected", [
    ("46", 1.0), (" 46 ", 1.0), ("46\n", 1.0), ("\n46", 1.0),
    ("046", 0.0), ("4 6", 0.0), ("", 0.0), ("46 46", 0.0), ("-46", 0.0), ("46.0", 0.0), ("4", 0.0),
])
def test_reward_is_exact_match_after_strip(task, completion, expected):
    assert task.reward(completion, {"question": "11+35=", "answer": "46"}) == expected


def test_prompt_is_one_user_message(task):
    row = task.rows("test")[0]
    assert task.prompt(row) == [{"role": "user", "content": row["question"]}]


def test_unknown_split_and_task_are_named(task):
    with pytest.raises(ValueError, match="'dev'"):
        task.rows("dev")
    with pytest.raises(ValueError, match="known tasks: arithmetic"):
        tasks.get("gsm9k")
