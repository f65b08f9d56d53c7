"""User-facing errors: the command line prints them without a traceback."""

from __future__ import annotations

import difflib
import errno
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path


class T2TError(Exception):
    """A problem with the user's input (file, recipe, task, run folder), with its fix."""


def closest(word: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """Return ' Did you mean X?' for the closest choice, or '' when none is close.

    `aliases` maps names other tools use (`learning_rate`) to a choice (`lr`); a word close to
    an alias suggests its choice. Without a close spelling, the one choice sharing the most
    words (`clip_grad` and `grad_clip`, `log_interval` and `log_every`) is suggested.
    """
    choices = list(choices)
    names = {alias: choice for alias, choice in (aliases or {}).items() if choice in choices}
    names.update({choice: choice for choice in choices})
    match = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6) or _sharing_words(word, choices)
    match = match or difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" Did you mean '{names[match[0]]}'?" if match else ""


def _words(name: str) -> set[str]:
    return set(re.split(r"[_./-]+", name.lower())) - {""}


def _sharing_words(word: str, choices: list[str]) -> list[str]:
    """The one choice that shares the most words with `word`; none when no word or a tie."""
    shared = sorted(((len(_words(word) & _words(choice)), choice) for choice in choices), reverse=True)
    if not shared or shared[0][0] == 0 or (len(shared) > 1 and shared[1][0] == shared[0][0]):
        return []
    return [shared[0][1]]


def disk_full(error: BaseException, folder: str | Path | None, fix: str = "") -> T2TError | None:
    """The T2TError for a write that failed on a full disk, else None.

    A full disk shows as OSError ENOSPC, as safetensors' "No space left on device", or as
    torch's zip writer failing in `inline_container.cc` (its reader's errors are corrupt files).
    """
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    full = next((e for e in chain if _is_full_disk(e)), None)
    if full is None:
        return None
    where = getattr(full, "filename", None) or folder or "the output folder"
    return T2TError(f"disk full while writing {where}{_free_space(Path(where))}: {full}. "
                    f"Free some space, or write to another disk{fix}.")


def _is_full_disk(error: BaseException) -> bool:
    text = str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return "No space left" in text or ("inline_container" in text and "Reader" not in text)


def _free_space(path: Path) -> str:
    """' (N MB free)' on the disk holding `path` (its nearest existing folder); '' when there is none."""
    folder = next((p for p in [path, *path.parents] if p.is_dir()), None)
    if folder is None:
        return ""
    return f" ({shutil.disk_usage(folder).free / 2**20:.1f} MB free)"
