"""Read the option a completion chose in a multiple-choice task (ARC-Challenge, WinoGrande).

The first rule that yields one of the offered letters wins:
  1. a stated answer, its last occurrence: "The answer is (C).", "Answer: c", "answer is option B";
  2. a named option, its last occurrence: "Option B", "choice (a)";
  3. a letter opening the completion: "C) 42 km", "(b) because", "D."  ("A cat ..." is not one);
  4. the last letter in parentheses anywhere: "... so (B) fits".
A letter counts in any case when parenthesised or followed by ")", ".", ":", "," or the end of a line, and in
upper case also when followed by a space ("answer is C because"); so "the answer is a dog" chooses nothing.
In rules 1 and 2 a digit n means the n-th option ("Option 2", "answer is (3)"). No rule matching: None.
"""
from __future__ import annotations

import re

_TOKEN = r"(?:\(([A-Za-z1-9])\)|([A-Z1-9])(?![A-Za-z0-9])|([a-z])(?=[).:,]|[ \t]*(?:\n|$)))"
_STATED = re.compile(r"(?i:\banswer\b)\W{0,6}(?:(?i:is|would be|should be|will be)\W{0,4})?"
                     r"(?:(?i:option|choice)\W{0,3})?" + _TOKEN)
_OPTION = re.compile(r"(?i:\b(?:option|choice)\b)\W{0,3}" + _TOKEN)
_LEADING = re.compile(r"^[\s*#>]*(?:\(([A-Za-z])\)|([A-Za-z])(?=[).:,\-]|[ \t]*(?:\n|$)))")
_PAREN = re.compile(r"\(([A-Za-z])\)")


def _letter(token: str, letters: str, digits: bool) -> str | None:
    """The offered letter a matched token names (a digit n is the n-th option where digits count)."""
    if token.isdigit():
        n = int(token)
        return letters[n - 1] if digits and n <= len(letters) else None
    token = token.upper()
    return token if token in letters else None


def _last(pattern: re.Pattern, text: str, letters: str, digits: bool) -> str | None:
    for m in reversed(list(pattern.finditer(text))):
        token = next(g for g in m.groups() if g is not None)
        found = _letter(token, letters, digits)
        if found:
            return found
    return None


def read_choice(completion: str, letters: str) -> str | None:
    """The upper-case letter among `letters` (e.g. "ABCD") that `completion` chose, by the module's rules."""
    return (_last(_STATED, completion, letters, True) or _last(_OPTION, completion, letters, True)
            or _last(_LEADING, completion, letters, False) or _last(_PAREN, completion, letters, False))
