"""User-facing errors: the command line prints them without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class T2TError(Exception):
    """A problem with the user's input (file, recipe, task, run folder), with its fix."""


def closest(word: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest choice, or '' when none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""
