"""Reading answers out of generated text against a structured option list.

The published ECG-LLM scorers' traps, avoided here: options are matched as whole phrases on
word boundaries ("no" is not found in "normal", "MI" not in "AMI"), longer options win over the
options they contain, options with commas are never split, and text that matches nothing is
reported as unparsed (None) - never replaced by a guess.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..data.tasks import LETTERS

_L = f"[{LETTERS[0]}-{LETTERS[-1]}]"  # any option letter


@lru_cache(maxsize=4096)
def _pattern(option: str) -> re.Pattern:
    body = r"\s+".join(re.escape(w) for w in option.lower().split())
    return re.compile(rf"(?<![\w-]){body}(?![\w-])")


def match_options(text: str | None, options: list[str]) -> list[str] | None:
    """Options named in `text` (in option order), longest first so a contained option is not
    double-counted; None when nothing matches or the text is empty."""
    if not text or not text.strip():
        return None
    low = " " + text.lower() + " "
    taken = [False] * len(low)
    found: set[str] = set()
    for opt in sorted(options, key=lambda o: (-len(o), o)):
        for m in _pattern(opt).finditer(low):
            if not any(taken[m.start() : m.end()]):
                found.add(opt)
                for i in range(m.start(), m.end()):
                    taken[i] = True
    if not found:
        return None
    return [o for o in options if o in found]


_LETTER_RE = [
    re.compile(
        rf"^\s*\(?({_L})(?:\)|\.|:|\s*$)"
    ),  # "B", "B.", "(B)", "B) text"; not "A normal ..."
    re.compile(rf"\banswer\s*(?:is|:)?\s*\(?({_L})\b\)?", re.I),
    re.compile(rf"\boption\s*\(?({_L})\b\)?", re.I),
]


def parse_choice(text: str | None, options: list[str], prefer: str = "letter") -> str | None:
    """A multiple-choice answer: a leading letter ("B", "B.", "(B)"), "answer is B", or exactly one
    option named in full. Returns the option text, or None (unparsed). `prefer="text"`: when the
    answer names exactly one option in full, that option, whatever its letter says ("D. sinus
    tachycardia" with sinus tachycardia as option B is B); the letter otherwise."""
    if not text or not text.strip():
        return None
    if prefer == "text":
        named = match_options(text, options)
        if named and len(named) == 1:
            return named[0]
    for rx in _LETTER_RE:
        m = rx.search(text)
        if m:
            k = LETTERS.index(m.group(1).upper())
            if k < len(options):
                return options[k]
    named = match_options(text, options)
    return named[0] if named and len(named) == 1 else None


_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_number(text: str | None) -> float | None:
    """The first number in the text ("72 bpm" -> 72.0), None if there is none."""
    if not text:
        return None
    m = _NUM.search(text.replace(",", ""))
    return float(m.group()) if m else None


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_reasoning(text: str | None) -> tuple[str | None, str]:
    """(reasoning, answer) of a completion that may think first, "<think> ... </think> answer"
    (the form GRPO's `think` option asks for, and Qwen3-style backbones write by default):
    the answer is what follows the last "</think>"; a block opened but never closed (cut by the
    token cap) leaves no answer (""); text with no block is all answer (reasoning None). Scorers
    read the answer only, so a model's reasoning can neither earn nor lose it points."""
    text = text or ""
    if THINK_CLOSE in text:
        head, _, answer = text.rpartition(THINK_CLOSE)
        head = head.strip()
        if head.startswith(THINK_OPEN):
            head = head[len(THINK_OPEN) :]
        return head.strip(), answer.strip()
    if text.lstrip().startswith(THINK_OPEN):
        return text.lstrip()[len(THINK_OPEN) :].strip(), ""
    return None, text.strip()
