"""A task from any dataset of prompts and answers, with no code: `task.name: prompt_answer`.

Options, besides the data options of es_hpc/tasks/data.py (`path` is required): `prompt_column` and
`answer_column` name the two columns (default prompt, answer); `system_prompt`, when not empty, is sent as a
system message before the prompt (the user message); `max_new_tokens` is the generation hint (default 512).
`reward` picks the rule, each scoring 0 or 1 (the answer is read as text, stripped):
  - exact: the completion, stripped, is the answer (case counts); exact-answer fast path allowed;
  - numeric: GSM8K's rule (es_hpc/tasks/gsm8k.py, `final_number`) read from both the completion and the answer:
    the first number after the last "####", else the last number, equal as values ("$1,234.0" matches 1234);
  - regex: `pattern` (Python `re`) is searched in the completion; its last match's first group (the whole
    match when it has no group), stripped, must be the answer, e.g. "answer is\\s*\\(?(\\w+)". The pattern is
    code from the config, so this reward is scored in the worker process under task.reward_timeout.
By default val and test are carved from train (a single file has only train; `val_size`, `test_size`);
`splits` maps them to a dataset's own splits instead.
"""
from __future__ import annotations

import re

from ..config import ConfigError
from .data import DatasetTask
from .gsm8k import final_number

REWARDS = ("exact", "numeric", "regex")


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"task.options.{name}: expected a string, got {value!r}")
    return value


class PromptAnswer(DatasetTask):
    name = "prompt_answer"
    default_splits = {"train": "train", "val": None, "test": None}

    def __init__(self, path: str | None = None, name: str | None = None, splits: dict | None = None,
                 val_size: int = 500, test_size: int = 500, split_seed: int = 0, prompt_column: str = "prompt",
                 answer_column: str = "answer", system_prompt: str = "", reward: str = "exact",
                 pattern: str | None = None, max_new_tokens: int = 512):
        if not path:
            raise ConfigError("task.options.path: prompt_answer needs a dataset (a local file or folder, or a hub id)")
        self.columns = (_text("prompt_column", prompt_column), _text("answer_column", answer_column))
        self.system_prompt = _text("system_prompt", system_prompt)
        if reward not in REWARDS:
            raise ConfigError(f"task.options.reward: {reward!r} is not one of {', '.join(REWARDS)}")
        if (pattern is None) != (reward != "regex"):
            raise ConfigError(f"task.options.pattern: {'needed' if pattern is None else 'only read'} with reward: "
                              f"regex (reward is {reward})")
        try:
            self.pattern = None if pattern is None else re.compile(_text("pattern", pattern))
        except re.error as exc:
            raise ConfigError(f"task.options.pattern: not a regular expression ({exc})") from None
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"task.options.max_new_tokens: expected an integer >= 1, got {max_new_tokens!r}")
        self.kind, self.max_new_tokens, self.isolated_reward = reward, max_new_tokens, reward == "regex"
        super().__init__(path, name, splits, val_size, test_size, split_seed)

    def prompt(self, row: dict) -> list[dict]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": str(row[self.columns[0]])}]

    def answer(self, completion: str) -> str | None:
        """The part of the completion compared with the answer under reward: regex (None: no match)."""
        matches = list(self.pattern.finditer(completion))
        if not matches:
            return None
        last = matches[-1]
        return (last.group(1) if self.pattern.groups else last.group(0)) or ""

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the completion gives the row's answer by the configured rule (module doc), else 0.0."""
        want = str(row[self.columns[1]]).strip()
        if self.kind == "exact":
            return 1.0 if completion.strip() == want else 0.0
        if self.kind == "numeric":
            got = final_number(completion)
            return 1.0 if got is not None and got == final_number(want) else 0.0
        got = self.answer(completion)
        return 1.0 if got is not None and got.strip() == want else 0.0

    def reference_completion(self, row: dict) -> str | None:
        """The answer under reward: exact (where `reward` is exact match of the stripped texts), else None."""
        return str(row[self.columns[1]]) if self.kind == "exact" else None
