"""IE-INSTRUCTIONS folders, as InstructUIE ships them: `<TASK>/<dataset>/{train,dev,test}.json` + `labels.json`.

Each split file is a JSON list of instances; `pos` are character offsets into the
sentence, end exclusive:

- NER ``{"sentence", "entities": [{"name", "type", "pos"}]}``; `labels.json` lists the types;
- RE adds ``"relations": [{"head": entity, "type", "tail": entity}]``;
- EE ``{"sentence", "events": [{"trigger", "type", "pos", "arguments": [{"name", "role", "pos"}]}]}``;
  `labels.json` is ``[event types, argument roles]``, given to every row as `event_types` and `roles`.

Options: `bad_offsets` (skip | fail): what to do with an instance whose offsets do not
match its text (counted and reported); `entity_types`: keep only these entity types
(subsets such as BC5CDR's chemicals).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.importers import register
from t2t_mtl.tasks.importers.common import BadRecords, check_options, read_json, split_file, to_dataset

OPTIONS = {"bad_offsets": "skip", "entity_types": None}


def _entity(raw: dict[str, Any]) -> dict[str, Any]:
    return {"name": str(raw["name"]), "type": str(raw["type"]), "pos": raw.get("pos")}


def _event(raw: dict[str, Any]) -> dict[str, Any]:
    arguments = [{"name": str(a["name"]), "role": str(a["role"]), "pos": a.get("pos")}
                 for a in raw.get("arguments") or ()]
    return {"type": str(raw["type"]), "trigger": str(raw["trigger"]), "pos": raw.get("pos"), "arguments": arguments}


def _spans(row: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(text, pos) of every span the row marks in its sentence."""
    for entity in row.get("entities", ()):
        yield entity["name"], entity["pos"]
    for relation in row.get("relations", ()):
        yield relation["head"]["name"], relation["head"]["pos"]
        yield relation["tail"]["name"], relation["tail"]["pos"]
    for event in row.get("events", ()):
        yield event["trigger"], event["pos"]
        for argument in event["arguments"]:
            yield argument["name"], argument["pos"]


def offset_mismatches(row: dict[str, Any]) -> list[str]:
    """Spans whose `pos` does not select their text in the sentence (spans without `pos` pass)."""
    sentence = row["sentence"]
    bad = []
    for text, pos in _spans(row):
        if pos is not None and (len(pos) != 2 or sentence[pos[0]:pos[1]] != text):
            bad.append(f"'{text}' at {pos} reads '{sentence[pos[0]:pos[1]] if len(pos) == 2 else ''}'")
    return bad


def _row(raw: dict[str, Any], kind: str, keep: set[str] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"sentence": str(raw["sentence"])}
    if kind == "EE":
        row["events"] = [_event(e) for e in raw.get("events") or ()]
        return row
    row["entities"] = [_entity(e) for e in raw.get("entities") or () if keep is None or e["type"] in keep]
    if kind == "RE":
        row["relations"] = [{"head": _entity(r["head"]), "type": str(r["type"]), "tail": _entity(r["tail"])}
                            for r in raw.get("relations") or ()]
    return row


def _kind(instances: list[dict[str, Any]]) -> str:
    keys = set().union(*(i.keys() for i in instances))
    return "EE" if "events" in keys else "RE" if "relations" in keys else "NER"


def _event_labels(folder: Path) -> dict[str, list[str]]:
    labels = read_json(folder / "labels.json") if (folder / "labels.json").is_file() else None
    if not (isinstance(labels, list) and len(labels) == 2 and all(isinstance(part, list) for part in labels)):
        raise T2TError(f"{folder / 'labels.json'}: an event extraction folder needs labels.json holding "
                       "[event types, argument roles].")
    return {"event_types": [str(t) for t in labels[0]], "roles": [str(r) for r in labels[1]]}


@register("ie_instructions")
def import_ie_instructions(path: Path, options: dict[str, Any], task: Any) -> datasets.Dataset:
    """Rows of one IE-INSTRUCTIONS split (a dataset folder, the file picked by `source.split`, or a file)."""
    settings = check_options(options, OPTIONS, "ie_instructions")
    source = split_file(path, task.source.split)
    instances = read_json(source)
    if not isinstance(instances, list) or not all(isinstance(i, dict) and "sentence" in i for i in instances):
        raise T2TError(f"{source}: an IE-INSTRUCTIONS split must be a JSON list of objects with a 'sentence'.")
    kind = _kind(instances)
    keep = set(settings["entity_types"]) if settings["entity_types"] else None
    extra = _event_labels(source.parent) if kind == "EE" else {}
    bad = BadRecords(source, "character offsets that do not match the sentence", settings["bad_offsets"])
    rows = []
    for number, raw in enumerate(instances):
        try:
            row = _row(raw, kind, keep)
        except (KeyError, TypeError) as error:
            raise T2TError(f"{source}: instance {number} lacks {error} (expected the {kind} schema).") from error
        mismatches = offset_mismatches(row)
        if mismatches:
            bad.add(f"instance {number}: {mismatches[0]}")
            continue
        rows.append({**row, **extra})
    bad.report()
    return to_dataset(rows, source)
