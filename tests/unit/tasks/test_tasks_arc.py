"""ARC-Challenge: the letter a completion chose (es_hpc/tasks/choice.py), numeric labels, prompt, parquet fixture."""
from pathlib import Path

import pytest

from es_hpc import tasks
from es_hpc.tasks.arc import ARCChallenge
from es_hpc.tasks.choice import read_choice

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "arc_challenge"
ROW = {"id": "x", "question": "Which?", "answerKey": "C",
       "choices": {"text": ["red", "green", "blue", "black"], "label": ["A", "B", "C", "D"]}}
NUMERIC = {"id": "y", "question": "Which?", "answerKey": "3",
           "choices": {"text": ["red", "green", "blue", "black"], "label": ["1", "2", "3", "4"]}}


@pytest.mark.parametrize("completion, letter", [
    ("The answer is (C).", "C"), ("the answer is (c)", "C"), ("Answer: C", "C"), ("answer: c.", "C"),
    ("The correct answer is **C**", "C"), ("The answer is option C because blue is right", "C"),
    ("C) blue", "C"), ("(C) blue", "C"), ("c) blue", "C"), ("C.", "C"), ("  C\n", "C"), ("C", "C"),
    ("A is wrong and B is wrong. The answer is (C).", "C"),  # a stated answer beats earlier letters
    ("The answer is (A). No wait, the answer is (C).", "C"),  # its last occurrence
    ("Option C fits best.", "C"), ("I would pick choice (c).", "C"),
    ("Red and green are wrong, so (C) blue.", "C"),  # last parenthesised letter
    ("The answer is (3).", "C"),  # a digit names the n-th choice
    ("A cat is not a color.", None), ("the answer is a color", None), ("I am not sure.", None),
    ("The answer is (E).", None),  # not offered
    ("", None),
])
def test_read_choice_on_tricky_completions(completion, letter):
    assert read_choice(completion, "ABCD") == letter


@pytest.mark.parametrize("completion, expected", [
    ("The answer is (C).", 1.0), ("(B)", 0.0), ("C) blue", 1.0), ("The answer is (3).", 1.0), ("3", 0.0),
])
def test_numeric_labels_map_to_letters_by_position(completion, expected):
    assert ARCChallenge.reward(None, completion, NUMERIC) == expected
    assert ARCChallenge.reward(None, completion, ROW) == expected


def test_fixture_splits_prompt_and_rewards():
    task = tasks.get("arc_challenge", path=str(FIXTURE))  # parquet files in the hub's ARC-Challenge/ layout
    assert {s: len(task.rows(s)) for s in tasks.SPLITS} == {"train": 6, "val": 2, "test": 3}
    row = task.rows("train")[2]
    assert set(row) == {"id", "question", "choices", "answerKey"} and row["choices"]["label"] == ["1", "2", "3", "4"]
    (msg,) = task.prompt(row)
    assert msg["content"].startswith(row["question"])
    assert "\nA. a ruler\nB. a thermometer\nC. a balance\nD. a graduated cylinder\n" in msg["content"]
    assert task.reward("The answer is (C).", row) == 1.0 and task.reward("The answer is (A).", row) == 0.0
    three, five = task.rows("train")[3], task.rows("train")[4]
    assert "\nC. natural gas\n\n" in task.prompt(three)[0]["content"]
    assert task.reward("E", five) == 0.0 and task.reward("The answer is (B)", five) == 1.0
    assert read_choice("E.", "ABCDE") == "E"
