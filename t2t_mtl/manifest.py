"""Manifests: what a saved folder (checkpoint, final/) holds, by content hash, and whose run wrote it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError

MANIFEST = "manifest.json"
UNHASHED = {MANIFEST, "COMPLETE"}
CHUNK = 1 << 20


class CorruptManifest(T2TError):
    """A manifest that cannot be read: the folder it describes counts as damaged."""


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` (but the manifest and the marker): relative path -> bytes and sha256."""
    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name not in UNHASHED}


def write_manifest(folder: Path, record: dict[str, Any]) -> None:
    """Write `record` plus the hashes of every file in `folder` to its manifest, flushed to disk."""
    path = folder / MANIFEST
    path.write_text(json.dumps({**record, "files": file_hashes(folder)}, indent=1, sort_keys=True), encoding="utf-8")
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (written before manifests existed).

    An unreadable one raises `CorruptManifest`.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptManifest(f"{MANIFEST} is corrupt ({error})") from error
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(f, dict) and isinstance(f.get("bytes"), int)
                                              and isinstance(f.get("sha256"), str) for f in files.values()):
        raise CorruptManifest(f"{MANIFEST} is not a t2t_mtl manifest (no 'files' with bytes and sha256)")
    return manifest


def damage(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """What differs from the manifest: missing files, wrong sizes (truncated), wrong hashes (altered)."""
    found = []
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif path.stat().st_size != expected["bytes"]:
            found.append(f"{name} has {path.stat().st_size} bytes, {expected['bytes']} were written (truncated?)")
        elif sha256_file(path) != expected["sha256"]:
            found.append(f"{name} does not match its sha256 (altered or zero-filled)")
    return found
