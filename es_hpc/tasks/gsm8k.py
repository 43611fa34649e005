"""GSM8K (openai/gsm8k, config main): grade-school word problems, reward 1 iff the final number matches.

Rows: `question`, `answer` (worked solution ending "#### <number>"). The dataset has train and test; val is
carved from train (es_hpc/tasks/data.py). Prompt (Appendix G.2): the question, "Let us think step by step",
and the final answer requested after "####".

Reading the final number of a completion: the text after the last "####" when there is one, else the whole
completion; in it, "$" and thousands commas ("1,234") are dropped and the number taken is the first one after
"####" (the last one in the whole completion when there is no "####"). A trailing period is not part of a
number ("#### 1,234." reads 1234). It matches when it equals the number after "####" in the row's answer as
a value ("42.0" and "42" match, "-3" and "3" do not).
"""
from __future__ import annotations

import re
from decimal import Decimal

from .data import DatasetTask

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def final_number(text: str) -> Decimal | None:
    """The final answer of a completion or of a GSM8K solution, by the module's rules; None if it has none."""
    _, sep, tail = text.rpartition("####")
    found = _NUMBER.findall(_THOUSANDS.sub("", (tail if sep else text).replace("$", "")))
    if not found:
        return None
    return Decimal(found[0] if sep else found[-1])


class GSM8K(DatasetTask):
    name = "gsm8k"
    default_path, default_name = "openai/gsm8k", "main"
    default_splits = {"train": "train", "val": None, "test": "test"}
    columns = ("question", "answer")

    def prompt(self, row: dict) -> list[dict]:
        return [{"role": "user", "content": f"{row['question']}\nLet us think step by step. At the end, write "
                                            "the final answer as a number after \"####\", e.g. \"#### 42\"."}]

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the completion's final number equals the row's (module doc), else 0.0."""
        got, want = final_number(completion), final_number(row["answer"])
        return 1.0 if got is not None and got == want else 0.0
