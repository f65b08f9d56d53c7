"""Read saved trained weights safely: unreadable, mis-shaped or foreign folders become errors naming the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from t2t_mtl.errors import T2TError

REWRITE = "Restore the folder from a backup, or write it again by resuming its run (t2t-mtl train RECIPE --resume)."


@contextmanager
def reading_weights(folder: Path) -> Iterator[None]:
    """Turn unreadable or mis-shaped saved weights into a T2TError naming the folder and the fix."""
    try:
        yield
    except (OSError, SafetensorError, ValueError) as error:
        files = ", ".join(p.name for p in sorted(folder.glob("*.safetensors"))) or "no *.safetensors file"
        raise T2TError(f"{folder}: the saved weights ({files}) cannot be read ({error}); a file is missing, "
                       f"truncated or not safetensors. {REWRITE}") from error
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        mismatch = next(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
        raise T2TError(f"{folder} holds weights of other shapes than this model ({mismatch}): they were trained "
                       f"with another adapter rank or model, in another run. {REWRITE}") from error


def saved_adapter_config(folder: Path) -> dict[str, Any]:
    """A saved PEFT adapter's adapter_config.json; a missing or corrupt one is a T2TError naming it."""
    path = folder / "adapter_config.json"
    if not path.is_file():
        raise T2TError(f"{folder} holds no PEFT adapter (adapter_config.json missing). {REWRITE}")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise T2TError(f"{path} is corrupt ({error}). {REWRITE}") from error
    if not isinstance(saved, dict):
        raise T2TError(f"{path} is not a PEFT adapter config (a JSON mapping). {REWRITE}")
    return saved


def check_same_shape(folder: Path, saved: Mapping[str, Any], expected: Mapping[str, Any], keys: tuple[str, ...],
                     recipe: str) -> None:
    """Refuse a saved adapter config whose shape `keys` differ from (or are missing against) the expected one."""
    def shown(config: Mapping[str, Any], key: str) -> str:
        return repr(config[key]) if key in config else "absent"

    differ = [f"{key}: {shown(saved, key)} saved, {shown(expected, key)} from the recipe" for key in keys
              if (key in saved or key in expected) and saved.get(key) != expected.get(key)]
    if differ:
        raise T2TError(f"{folder / 'adapter_config.json'} does not match the run's recipe ({recipe}): "
                       f"{'; '.join(differ)}. These weights come from another run, recipe or adapter method: "
                       f"{REWRITE}")


def refuse_unexpected(folder: Path, unexpected: list[str]) -> None:
    """Refuse saved weights that name parameters the live model does not have."""
    if unexpected:
        raise T2TError(f"{folder} does not belong to this model: unexpected weights {unexpected[:3]}...")
