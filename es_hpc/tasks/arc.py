"""ARC-Challenge (allenai/ai2_arc, config ARC-Challenge): science multiple choice, reward 1 iff the letter is right.

Rows: `id`, `question`, `choices` {`text`, `label`}, `answerKey`; train, validation and test as published.
The choices are listed as A, B, C, ... in their order, whatever their labels: rows labelled "1"-"4" are shown
as A-D and their answerKey "3" is C. The chosen letter is read by es_hpc/tasks/choice.py.
"""
from __future__ import annotations

from .choice import read_choice
from .data import DatasetTask

LETTERS = "ABCDEFGH"


class ARCChallenge(DatasetTask):
    name = "arc_challenge"
    default_path, default_name = "allenai/ai2_arc", "ARC-Challenge"
    default_splits = {"train": "train", "val": "validation", "test": "test"}
    columns = ("question", "choices", "answerKey")

    def prompt(self, row: dict) -> list[dict]:
        listed = "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(row["choices"]["text"]))
        return [{"role": "user", "content": f"{row['question']}\n\n{listed}\n\nChoose the correct answer and "
                                            "reply with its letter, as in \"The answer is (A).\""}]

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the chosen letter is the position of answerKey among the row's labels, else 0.0."""
        labels = row["choices"]["label"]
        right = LETTERS[labels.index(row["answerKey"])]
        return 1.0 if read_choice(completion, LETTERS[:len(labels)]) == right else 0.0
