"""WinoGrande (allenai/winogrande, config winogrande_xl): fill the blank with one of two options, A or B.

Rows: `sentence` (with "_" for the blank), `option1`, `option2`, `answer` ("1" or "2"). The published test
split is unlabelled (answer ""), so the task's test split is the published validation split and val is carved
from train (es_hpc/tasks/data.py). The chosen option is read by es_hpc/tasks/choice.py (letters A/B, or
"Option 2"); when no letter is found, a completion that contains exactly one of the two option texts (whole
words, any case) chose that one.
"""
from __future__ import annotations

import re

from .choice import read_choice
from .data import DatasetTask


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


class WinoGrande(DatasetTask):
    name = "winogrande"
    default_path, default_name = "allenai/winogrande", "winogrande_xl"
    default_splits = {"train": "train", "val": None, "test": "validation"}
    columns = ("sentence", "option1", "option2", "answer")

    def prompt(self, row: dict) -> list[dict]:
        return [{"role": "user", "content": f"Fill in the blank (_) in the sentence with the right option.\n"
                                            f"Sentence: {row['sentence']}\nA. {row['option1']}\n"
                                            f"B. {row['option2']}\nAnswer with A or B."}]

    def choice(self, completion: str, row: dict) -> str | None:
        """"A", "B" or None: the letter read from the completion, else the one option text it mentions."""
        letter = read_choice(completion, "AB")
        if letter is None:
            named = [x for x, opt in (("A", row["option1"]), ("B", row["option2"])) if _mentions(completion, opt)]
            letter = named[0] if len(named) == 1 else None
        return letter

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the chosen option is the row's answer ("1" is A, "2" is B), else 0.0."""
        right = {"1": "A", "2": "B"}.get(str(row["answer"]))
        return 1.0 if right is not None and self.choice(completion, row) == right else 0.0
