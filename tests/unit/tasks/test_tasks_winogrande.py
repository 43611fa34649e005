"""WinoGrande: A/B read from letters, "Option B" or the option text; the published splits' mapping."""
from pathlib import Path

import pytest

from es_hpc import tasks
from es_hpc.tasks.winogrande import WinoGrande

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "winogrande"
ROW = {"sentence": "Maria lent her umbrella to Kate because _ was going out into the rain.",
       "option1": "Maria", "option2": "Kate", "answer": "2"}


@pytest.mark.parametrize("completion, expected", [
    ("B", 1.0), ("b", 1.0), ("B. Kate", 1.0), ("The answer is B.", 1.0), ("Option B", 1.0), ("option 2", 1.0),
    ("Answer: (b)", 1.0), ("Kate", 1.0), ("It is kate who goes out.", 1.0),  # the option text, any case
    ("A", 0.0), ("Option A", 0.0), ("Maria", 0.0), ("The answer is A, Kate", 0.0),  # a letter beats a name
    ("Maria or Kate, hard to say", 0.0),  # both names: no choice
    ("Katherine", 0.0), ("A cat", 0.0), ("", 0.0),
])
def test_reward_on_tricky_completions(completion, expected):
    assert WinoGrande.reward(WinoGrande.__new__(WinoGrande), completion, ROW) == expected


def test_unlabelled_row_scores_zero():
    assert WinoGrande.reward(WinoGrande.__new__(WinoGrande), "B", dict(ROW, answer="")) == 0.0


def test_fixture_splits_prompt():
    task = tasks.get("winogrande", path=str(FIXTURE), val_size=2)
    sizes = {s: len(task.rows(s)) for s in tasks.SPLITS}
    assert sizes == {"train": 6, "val": 2, "test": 4}  # test is the published (labelled) validation split
    assert all(r["answer"] in ("1", "2") for s in tasks.SPLITS for r in task.rows(s))
    row = task.rows("test")[0]
    assert set(row) == {"sentence", "option1", "option2", "answer"}
    (msg,) = task.prompt(row)
    assert f"Sentence: {row['sentence']}\nA. bottle\nB. floor\nAnswer with A or B." in msg["content"]
    assert task.reward("A", row) == 1.0 and task.reward("B", row) == 0.0
