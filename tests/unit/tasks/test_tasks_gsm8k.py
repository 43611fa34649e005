"""GSM8K: the final-number rule on tricky completions, the prompt of Appendix G.2, the fixture's rows."""
from decimal import Decimal
from pathlib import Path

import pytest

from es_hpc import tasks
from es_hpc.tasks.gsm8k import GSM8K, final_number

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "gsm8k"
ROW = {"question": "How many?", "answer": "12 * 100 = <<12*100=1200>>1200 and 1200 + 34 = 1234\n#### 1234"}


@pytest.mark.parametrize("completion, expected", [
    ("#### 1234", 1.0), ("#### 1,234.", 1.0), ("#### $1,234", 1.0), ("####1234.00", 1.0), ("#### 1234 apples", 1.0),
    ("So 12 + 34 = 46, then ... #### 1234\n(I checked: 1234 - 34 = 1200)", 1.0),  # first number after the last ####
    ("#### 46\nWait, that is wrong. #### 1234", 1.0),  # the last #### wins
    ("#### 1234\nActually no. #### 1200", 0.0),
    ("The total is 1,234.", 1.0),  # no ####: the last number of the completion
    ("1234 is what I first thought, but the answer is 1200", 0.0),
    ("#### one thousand two hundred thirty-four (1234?)", 1.0),
    ("#### no number here", 0.0), ("", 0.0), ("#### -1234", 0.0), ("#### 12345", 0.0), ("#### 1234.5", 0.0),
])
def test_reward_on_tricky_completions(completion, expected):
    assert GSM8K.reward(None, completion, ROW) == expected


@pytest.mark.parametrize("text, value", [
    ("#### $42", "42"), ("#### 42.0", "42"), ("#### 42.", "42"), ("#### -7", "-7"), ("#### 3.25", "3.25"),
    ("it costs $1,050,000 in all", "1050000"), ("12,5 apples", "5"), ("nothing", None),
])
def test_final_number(text, value):
    assert final_number(text) == (None if value is None else Decimal(value))


def test_fixture_rows_prompt_and_gold_answers():
    task = tasks.get("gsm8k", path=str(FIXTURE), val_size=2)
    assert {s: len(task.rows(s)) for s in tasks.SPLITS} == {"train": 6, "val": 2, "test": 4}
    row = task.rows("test")[2]
    assert set(row) == {"question", "answer"}  # the dataset's own schema
    (msg,) = task.prompt(row)
    assert msg["role"] == "user" and msg["content"].startswith(row["question"])
    assert "Let us think step by step" in msg["content"] and '"####"' in msg["content"]
    for r in task.rows("train") + task.rows("val") + task.rows("test"):
        gold = r["answer"].rsplit("####", 1)[1].strip()
        assert task.reward(f"Step by step ... so the answer is\n#### {gold}", r) == 1.0
        assert task.reward(r["answer"], r) == 1.0  # the worked solution itself scores
        assert task.reward(f"#### {int(gold) + 1}", r) == 0.0
    assert task.max_new_tokens == 512
