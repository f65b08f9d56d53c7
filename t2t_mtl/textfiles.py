"""A user's files: reading them, and the folders written to; every failure is a T2TError naming the file and the fix."""

from __future__ import annotations

import os
from pathlib import Path

from t2t_mtl.errors import T2TError


def read_text(path: Path, what: str, encoding: str = "utf-8") -> str:
    """The text of a user's file; missing, unreadable or undecodable files are named as `what` (e.g. "task file")."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError as error:
        raise T2TError(f"{what} {path} does not exist") from error
    except UnicodeDecodeError as error:
        raise T2TError(f"{what} {not_text(path, error, encoding)}") from error
    except OSError as error:
        raise T2TError(f"could not read {what} {path}: {error.strerror or error}") from error


def not_text(path: Path, error: UnicodeDecodeError, encoding: str = "utf-8", fix: str = "") -> T2TError:
    """The error for a file (or a file in folder `path`) that is not `encoding` text: file, line, byte and fix."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    place = next((found for file in files if (found := _undecodable_line(file, encoding))), None)
    where = str(path)
    if place is not None:
        file, number, error = place
        where = f"{file}, line {number}, byte {error.start + 1} of the line"
    return T2TError(f"{where}: not {encoding} text ({error.reason}: {error.object[error.start:error.end]!r}). "
                    f"Convert the file to {encoding} (for example `iconv -f latin1 -t utf-8 OLD > NEW`){fix}.")


def _undecodable_line(file: Path, encoding: str) -> tuple[Path, int, UnicodeDecodeError] | None:
    """The first line (from 1) that does not decode, with its error; None when every line does."""
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as error:
                return file, number, error
    return None


def writable_folder(path: Path, option: str) -> None:
    """Make the folder that `path` (given as `option`) goes in, or refuse it: it cannot be made, or is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise T2TError(f"{option} {path}: cannot make its folder {path.parent} ({error.strerror}).") from error
    if not os.access(path.parent, os.W_OK):
        raise T2TError(f"{option} {path}: the folder {path.parent} is not writable. Choose another folder.")
