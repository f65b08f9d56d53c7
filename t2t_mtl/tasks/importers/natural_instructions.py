"""Super-NaturalInstructions task files (`tasks/taskNNN_name.json` in allenai/natural-instructions).

A task file holds `Definition` (a list of one string), `Positive Examples` and
`Negative Examples` (`input`, `output`, `explanation`) and `Instances` (`id`, `input`,
`output`: a list of references). Every instance becomes a row with the task's
definition, its first `pos_examples` positive and `neg_examples` negative examples,
`input`, `output` (the first reference, the training target) and `outputs` (all
references). `instances` names the list to read (`Dev_Instances` in some releases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.importers import register
from t2t_mtl.tasks.importers.common import check_options, read_json, to_dataset

OPTIONS = {"pos_examples": 2, "neg_examples": 0, "instances": "Instances"}
REQUIRED = ("Definition", "Instances")


def _text(value: Any) -> str:
    """A field that NI stores as a string or a list of strings, as one string."""
    return " ".join(str(v).strip() for v in value) if isinstance(value, list) else str(value).strip()


def _examples(raw: list[dict[str, Any]], count: int) -> list[dict[str, str]]:
    return [{"input": _text(e.get("input", "")), "output": _text(e.get("output", "")),
             "explanation": _text(e.get("explanation", ""))} for e in raw[:count]]


@register("natural_instructions")
def import_natural_instructions(path: Path, options: dict[str, Any], task: Any) -> datasets.Dataset:
    """One row per instance of a Super-NI task file."""
    settings = check_options(options, OPTIONS, "natural_instructions")
    data = read_json(path)
    missing = [key for key in REQUIRED if not isinstance(data, dict) or key not in data]
    if missing:
        raise T2TError(f"{path}: not a Super-NaturalInstructions task file: it has no {' or '.join(missing)}.")
    instances = data.get(settings["instances"])
    if not isinstance(instances, list):
        raise T2TError(f"{path}: '{settings['instances']}' must be a list of instances.")
    shared = {
        "task": path.stem,
        "definition": _text(data["Definition"]),
        "positive_examples": _examples(data.get("Positive Examples") or [], settings["pos_examples"]),
        "negative_examples": _examples(data.get("Negative Examples") or [], settings["neg_examples"]),
    }
    rows = []
    for number, instance in enumerate(instances):
        outputs = instance.get("output") if isinstance(instance, dict) else None
        outputs = [outputs] if isinstance(outputs, str) else outputs
        if not outputs or "input" not in instance:
            raise T2TError(f"{path}: instance {number} needs an 'input' and at least one 'output'.")
        rows.append({**shared, "id": str(instance.get("id", number)), "input": str(instance["input"]).strip(),
                     "output": str(outputs[0]).strip(), "outputs": [str(o).strip() for o in outputs]})
    return to_dataset(rows, path)
