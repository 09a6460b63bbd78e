"""Naming what would have been valid, so an error says what to write instead.

Every dialect's errors use these: unknown kinds and operators list the choices, unknown
fields name the closest known ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

# Enough to catch a typo without burying the answer in near-misses.
_MAX_SUGGESTIONS = 3


def show(value: object) -> str:
    """The user's input quoted for a message, cut short if long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_of(choices: Iterable[str]) -> str:
    """'expected one of a, b, c', in the order given."""
    return f"expected one of {', '.join(choices)}"


def closest(word: str, choices: Iterable[str]) -> list[str]:
    """The choices most like `word` (a misspelling), best first; empty if none is close."""
    return get_close_matches(word, list(choices), n=_MAX_SUGGESTIONS)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """ "did you mean 'email'?" (or "one of ...") when a choice is close to `word`."""
    near = closest(word, choices)
    if not near:
        return None
    if len(near) == 1:
        return f"did you mean {show(near[0])}?"
    return f"did you mean one of {', '.join(map(show, near))}?"
