"""Countdown (Jiayi-Pan/Countdown-Tasks-3to4, as in Qiu et al. 2025): combine the numbers to hit the target.

Rows: `nums` (3-4 integers), `target` (integer); the dataset has only train, so val and test are carved from
it (es_hpc/tasks/data.py). Prompt: TinyZero's, as used by Qiu et al.: work in <think> tags, the equation in
<answer> tags.

Reading the answer: the text inside the last <answer>...</answer>, else the last non-empty line of the
completion; "×" and "÷" read as "*" and "/", and anything from the first "=" on is dropped ("3*4 = 12"). The
expression is parsed with `ast` (never evaluated as Python) and may hold only integer literals, the binary
operators + - * / and parentheses (no unary minus, no other syntax, at most 200 characters). Reward 1 iff
its literals are the row's numbers, each used exactly once, and its exact rational value (division by zero
scores 0) equals the target.
"""
from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from fractions import Fraction

from .data import DatasetTask

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
MAX_CHARS = 200


def answer_expression(completion: str) -> str:
    """The expression a completion gives, by the module's rules (may be empty)."""
    tagged = _ANSWER.findall(completion)
    lines = [ln for ln in completion.splitlines() if ln.strip()]
    text = tagged[-1] if tagged else (lines[-1] if lines else "")
    return text.replace("×", "*").replace("÷", "/").split("=")[0].strip()


def evaluate(expression: str) -> tuple[Fraction, list[int]] | None:
    """(exact value, integer literals in order) of a + - * / expression, or None if it is not one or
    divides by zero."""
    if not expression or len(expression) > MAX_CHARS:
        return None
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError):
        return None
    literals: list[int] = []

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"not allowed: {type(node).__name__}")

    try:
        return value(tree.body), literals
    except (ValueError, ZeroDivisionError):
        return None


class Countdown(DatasetTask):
    name = "countdown"
    default_path, default_name = "Jiayi-Pan/Countdown-Tasks-3to4", None
    default_splits = {"train": "train", "val": None, "test": None}
    columns = ("nums", "target")

    def prompt(self, row: dict) -> list[dict]:
        return [
            {"role": "system", "content": "You are a helpful assistant. You first think about the reasoning "
                                          "process in the mind and then provide the user with the answer."},
            {"role": "user", "content": f"Using the numbers {list(row['nums'])}, create an equation that equals "
                                        f"{row['target']}. You can use basic arithmetic operations (+, -, *, /) and "
                                        "each number can only be used once. Show your work in <think> </think> "
                                        "tags. And return the final answer in <answer> </answer> tags, for example "
                                        "<answer> (1 + 2) / 3 </answer>."},
        ]

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the answer expression uses each number exactly once and equals the target, else 0.0."""
        parsed = evaluate(answer_expression(completion))
        if parsed is None:
            return 0.0
        total, literals = parsed
        return 1.0 if Counter(literals) == Counter(row["nums"]) and total == row["target"] else 0.0
