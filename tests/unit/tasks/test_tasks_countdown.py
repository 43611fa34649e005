"""Countdown: the answer expression is parsed with ast (never evaluated), each number exactly once."""
from pathlib import Path

import pytest

from es_hpc import tasks
from es_hpc.tasks.countdown import Countdown, answer_expression, evaluate

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "countdown"
ROW = {"target": 24, "nums": [4, 6, 2, 8]}
SOLUTIONS = ["25 + 7 * 3", "44 + 19 + 35", "9 * 4 + 6 * 2", "81 / 3 - 5", "10 * 6 - 12 + 4", "50 * 2 + 3",
             "8 * 8 + 3", "15 / 5 + 9 + 1", "72 / 6 + 4", "13 * 2 + 11", "7 * 3 - 20 / 5", "90 / 45 * 9"]


@pytest.mark.parametrize("completion, expected", [
    ("<think>4*6=24, then ...</think> <answer>(8 - 6) * 2 * 6</answer>", 0.0),  # 6 twice, 4 unused
    ("<answer>4 * 6 * (8 / 2) / 4</answer>", 0.0),  # 4 twice
    ("<answer>4 * 6 + 8 - 2</answer>", 0.0),  # 30
    ("<answer> 4 * 6 * (8 - 2) / 6 </answer>", 0.0),  # 6 twice
    ("<answer>(8 - 6 + 4) * 2 * 2</answer>", 0.0),  # uses 2 twice
    ("<answer>6 * 8 / (4 - 2)</answer>", 1.0), ("<answer>\n(4 - 2) * 8 + 6 - 6\n</answer>", 0.0),
    ("<answer>8 / (4 - 2) * 6</answer>", 1.0), ("<answer>6 × 8 ÷ (4 - 2)</answer>", 1.0),
    ("<answer>6 * 8 / (4 - 2) = 24</answer>", 1.0),  # "= target" dropped
    ("<answer>1 + 2</answer> oops <answer>6 * 8 / (4 - 2)</answer>", 1.0),  # the last answer tag
    ("<answer>6 * 8 / (4 - 2)</answer> <answer>6 + 8</answer>", 0.0),
    ("I think it is\n6 * 8 / (4 - 2)", 1.0),  # no tag: the last non-empty line
    ("<answer>6 * 8 // (4 - 2)</answer>", 0.0), ("<answer>(6 * 8) / (4 - 2.0)</answer>", 0.0),
    ("<answer>-(6 * 8) / (2 - 4)</answer>", 0.0),  # no unary minus
    ("<answer>6 * 8 / (4 - 2) ** 1</answer>", 0.0), ("<answer>__import__('os').getcwd()</answer>", 0.0),
    ("<answer>6 * 8 / (2 - 2) + 4</answer>", 0.0),  # division by zero scores 0
    ("<answer>6 * 8 / (4 - 2</answer>", 0.0), ("<answer></answer>", 0.0), ("", 0.0),
    ("<answer>" + "(" * 150 + "6*8/(4-2)" + ")" * 150 + "</answer>", 0.0),  # over 200 characters
])
def test_reward_on_tricky_completions(completion, expected):
    assert Countdown.reward(None, completion, ROW) == expected


def test_evaluate_is_exact_and_refuses_other_syntax():
    assert evaluate("7 / 3 * 3") == (7, [7, 3, 3])  # exact rationals: no float round-off
    for bad in ("2 ** 3", "a + 1", "[1, 2]", "1 if 1 else 2", "(lambda: 1)()", "1; 2", "1 < 2", "True + 1"):
        assert evaluate(bad) is None, bad
    assert answer_expression("<answer> 1+2 </answer>") == "1+2"


def test_fixture_rows_are_solvable_and_prompted():
    task = tasks.get("countdown", path=str(FIXTURE), val_size=2, test_size=3)  # a save_to_disk folder
    assert {s: len(task.rows(s)) for s in tasks.SPLITS} == {"train": 7, "val": 2, "test": 3}
    rows = {tuple(r["nums"]): r for s in tasks.SPLITS for r in task.rows(s)}
    assert len(rows) == 12 and all(set(r) == {"target", "nums"} for r in rows.values())
    for expr in SOLUTIONS:
        nums = tuple(int(x) for x in expr.replace("(", " ").replace(")", " ").split() if x.isdigit())
        row = next(r for r in rows.values() if sorted(r["nums"]) == sorted(nums))
        assert task.reward(f"<think>...</think><answer>{expr}</answer>", row) == 1.0, expr
    row = task.rows("train")[0]
    system, user = task.prompt(row)
    assert system["role"] == "system" and user["role"] == "user"
    assert f"Using the numbers {row['nums']}, create an equation that equals {row['target']}." in user["content"]
    assert "<answer> </answer>" in user["content"]
