"""The generic prompt_answer task (es_hpc/tasks/prompt_answer.py): columns and system prompt from the options, the
three reward rules on tricky completions, option errors naming the option, and the README example's data."""
import json
from pathlib import Path

import pytest

from es_hpc import config, tasks
from es_hpc.config import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "examples" / "prompt_answer.yaml"
ROWS = [{"q": f"question {i}", "a": str(i * 111)} for i in range(12)]


@pytest.fixture
def data(tmp_path) -> str:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def make(data, **options):
    return tasks.get("prompt_answer", **{"path": data, "prompt_column": "q", "answer_column": "a", "val_size": 2,
                                         "test_size": 2, **options})


def test_columns_system_prompt_and_carved_splits(data):
    task = make(data, system_prompt="Answer with a number.")
    assert {s: len(task.rows(s)) for s in tasks.SPLITS} == {"train": 8, "val": 2, "test": 2}
    assert sorted(r["q"] for s in tasks.SPLITS for r in task.rows(s)) == sorted(r["q"] for r in ROWS)
    row = task.rows("train")[0]
    assert task.prompt(row) == [{"role": "system", "content": "Answer with a number."},
                                {"role": "user", "content": row["q"]}]
    assert make(data).prompt(row) == [{"role": "user", "content": row["q"]}]  # no system prompt: none sent
    assert make(data).max_new_tokens == 512 and make(data, max_new_tokens=8).max_new_tokens == 8


def test_exact_reward_and_its_reference(data):
    task = make(data)
    row = {"q": "2+2=", "a": "4"}
    assert [task.reward(c, row) for c in ("4", " 4\n", "04", "4.0", "four", "The answer is 4")] == [1, 1, 0, 0, 0, 0]
    assert task.reward("Paris", {"a": " Paris "}) == 1.0 and task.reward("paris", {"a": "Paris"}) == 0.0
    assert task.reference_completion(row) == "4" and not task.isolated_reward
    assert task.reward("7", {"a": 7}) == 1.0  # a number in the file is read as its text


def test_numeric_reward_is_the_gsm8k_rule(data):
    task = make(data, reward="numeric")
    row = {"a": "1234"}
    for completion, want in [("#### 1,234", 1), ("So the total is $1,234.00.", 1), ("1234 or 1235", 0),
                             ("#### 1234 (not 1235)", 1), ("about 1.234e3", 0), ("-1234", 0), ("no number", 0)]:
        assert task.reward(completion, row) == want, completion
    assert task.reward("#### 42", {"a": "Janet ... #### 42"}) == 1.0  # an answer in GSM8K's own form
    assert task.reward("42", {"a": 42.0}) == 1.0
    assert task.reference_completion(row) is None and not task.isolated_reward


def test_regex_reward_compares_the_last_match(data):
    task = make(data, reward="regex", pattern=r"answer is \(?([A-Da-d])\)?")
    row = {"a": "C"}
    assert task.reward("The answer is (C).", row) == 1.0
    assert task.reward("The answer is A... no, the answer is C", row) == 1.0  # the last match counts
    assert task.reward("The answer is C, or the answer is B", row) == 0.0
    assert task.reward("C", row) == 0.0 and task.reward("the answer is c", row) == 0.0  # no match; case counts
    whole = make(data, reward="regex", pattern=r"\d+(?=\s*$)")  # no group: the whole match
    assert whole.reward("steps 1, 2 ... 42 ", {"a": "42"}) == 1.0 and whole.reward("42 then", {"a": "42"}) == 0.0
    assert task.isolated_reward and task.reference_completion(row) is None  # code from the config: the worker


@pytest.mark.parametrize("options, message", [
    ({"reward": "fuzzy"}, r"^task.options.reward: 'fuzzy' is not one of exact, numeric, regex$"),
    ({"reward": "regex"}, r"^task.options.pattern: needed with reward: regex"),
    ({"pattern": "x"}, r"^task.options.pattern: only read with reward: regex \(reward is exact\)$"),
    ({"reward": "regex", "pattern": "(unclosed"}, r"^task.options.pattern: not a regular expression "),
    ({"prompt_column": 3}, r"^task.options.prompt_column: expected a string, got 3$"),
    ({"max_new_tokens": 0}, r"^task.options.max_new_tokens: expected an integer >= 1, got 0$"),
    ({"shots": 5}, r"^task.options.shots: unknown option of prompt_answer"),
])
def test_bad_options_name_the_option(data, options, message):
    with pytest.raises(ConfigError, match=message):
        make(data, **options)


def test_missing_path_or_columns_name_the_option(data):
    with pytest.raises(ConfigError, match=r"^task.options.path: prompt_answer needs a dataset"):
        tasks.get("prompt_answer")
    task = tasks.get("prompt_answer", path=data, val_size=2, test_size=2)  # default columns: prompt, answer
    with pytest.raises(ConfigError, match=r"^task.options.path: prompt_answer needs columns prompt, answer; the "
                                          r"\w+ rows have q, a$"):
        task.rows("train")


def test_the_readme_example_config_and_data():
    cfg = config.load(EXAMPLE, job="train")
    task = tasks.get(cfg.task.name, **cfg.task.options)  # its path is relative to the repository root
    rows = {s: task.rows(s) for s in tasks.SPLITS}
    assert sum(map(len, rows.values())) == 20 and len(rows["train"]) >= cfg.train.prompts_per_iteration
    for row in rows["train"]:
        a, b = row["problem"].removesuffix("=").split("+")
        assert task.reward(f"{int(a) + int(b)}\n", row) == 1.0 and task.reward(f"{int(a) + int(b) + 1}", row) == 0.0
