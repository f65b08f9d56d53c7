"""Schema-Guided Dialogue (google-research-datasets/dstc8-schema-guided-dialogue): dialogues + schema.

`path` is a split folder (`dialogues_*.json` and `schema.json`) or one dialogues file,
its schema found beside it (`schema`, else `schema.json`, else the one `*schema.json`).

With `speaker: user` (default) there is one row per user turn and service frame:
the dialogue so far (`history`, then `utterance`), the service and its schema
(`service_description`, `slots` with descriptions), `active_intent`, the user's
`actions`, and the cumulative `state` after the turn as `[{"slot", "value"}]` sorted by
slot (the first of a slot's listed values). SGD lists equivalent surface forms of a
value; `state_reference` holds, for the DSTC8 joint goal accuracy, the canonical state
rendered by `format_state` (what the target is) and one JSON string with every slot of the
service's schema, its `is_categorical` (false when the schema omits it), and every listed
value of each active slot in the data's order; only the JSON one is scored (see
`t2t_mtl.evaluation.dialogue_state`). With `speaker: system`
there is one row per system turn: `history`, the system `utterance` and its `actions`.
A turn without frames, or a user frame without a state, is skipped and counted
(`missing_frames: fail` stops instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.dialogue_state import state_reference
from t2t_mtl.formats import format_state
from t2t_mtl.tasks.importers import register
from t2t_mtl.tasks.importers.common import BadRecords, check_options, read_json, to_dataset

OPTIONS = {"speaker": "user", "schema": None, "missing_frames": "skip"}
SPEAKERS = {"user": "USER", "system": "SYSTEM"}


def _dialogue_files(path: Path) -> list[Path]:
    files = [path] if path.is_file() else sorted(path.glob("*dialogues_*.json"))
    if not files:
        raise T2TError(f"{path}: no SGD dialogue files (dialogues_*.json) in this folder.")
    return files


def _schema_file(folder: Path, name: str | None) -> Path:
    if name:
        return folder / name
    if (folder / "schema.json").is_file():
        return folder / "schema.json"
    found = sorted(folder.glob("*schema.json"))
    if len(found) != 1:
        raise T2TError(f"{folder}: cannot tell which file is the SGD schema ({[p.name for p in found]}); "
                       "name it with source.options.schema.")
    return found[0]


def _services(schema_file: Path) -> dict[str, dict[str, Any]]:
    schema = read_json(schema_file)
    if not isinstance(schema, list):
        raise T2TError(f"{schema_file}: an SGD schema must be a JSON list of services.")
    return {s["service_name"]: {"service_description": s.get("description", ""),
                                "slots": [{"name": x["name"], "description": x.get("description", "")}
                                          for x in s.get("slots", [])],
                                "categorical": {x["name"]: bool(x.get("is_categorical", False))
                                                for x in s.get("slots", [])}}
            for s in schema}


def _actions(frame: dict[str, Any]) -> list[dict[str, str]]:
    """One {act, slot, value} per value of each action (a value-less action once, value "")."""
    return [{"act": a["act"], "slot": a.get("slot", ""), "value": value}
            for a in frame.get("actions", []) for value in (a.get("values") or [""])]


def _state_fields(slot_values: dict[str, list[str]], categorical: dict[str, bool]) -> dict[str, Any]:
    slot_values = {slot: values for slot, values in slot_values.items() if values}
    first = [{"slot": s, "value": slot_values[s][0]} for s in sorted(slot_values)]
    return {"state": first, "state_reference": [format_state(first), state_reference(categorical, slot_values)]}


class _Reader:
    """Turns dialogues into rows for one speaker."""

    def __init__(self, settings: dict[str, Any], services: dict[str, dict[str, Any]], bad: BadRecords) -> None:
        if settings["speaker"] not in SPEAKERS:
            raise T2TError(f"source.options.speaker must be one of {sorted(SPEAKERS)}, not '{settings['speaker']}'.")
        self.speaker = SPEAKERS[settings["speaker"]]
        self.services = services
        self.bad = bad

    def service(self, name: str) -> dict[str, Any]:
        if name not in self.services:
            raise T2TError(f"service '{name}' is not in the SGD schema (it has {sorted(self.services)}).")
        return self.services[name]

    def row_service(self, name: str) -> dict[str, Any]:
        """The service's fields of a row (its description and slots)."""
        service = self.service(name)
        return {"service_description": service["service_description"], "slots": service["slots"]}

    def rows(self, dialogue: dict[str, Any]) -> list[dict[str, Any]]:
        rows, history = [], []
        for number, turn in enumerate(dialogue["turns"]):
            if turn["speaker"] == self.speaker:
                where = f"dialogue {dialogue['dialogue_id']}, turn {number}"
                if not turn.get("frames"):
                    self.bad.add(f"{where} has no frames")
                for frame in turn.get("frames") or ():
                    row = self.row(frame, where)
                    if row is not None:
                        rows.append({"dialogue_id": dialogue["dialogue_id"], "turn": number, "history": list(history),
                                     "utterance": turn["utterance"], **row})
            history.append(f"{'User' if turn['speaker'] == 'USER' else 'System'}: {turn['utterance']}")
        return rows

    def row(self, frame: dict[str, Any], where: str) -> dict[str, Any] | None:
        fields = {"service": frame["service"], **self.row_service(frame["service"]), "actions": _actions(frame)}
        if self.speaker == "SYSTEM":
            return fields
        state = frame.get("state")
        if state is None:
            self.bad.add(f"{where}: the {frame['service']} frame has no state")
            return None
        return {**fields, "active_intent": state.get("active_intent", "NONE"),
                **_state_fields(state.get("slot_values", {}), self.service(frame["service"])["categorical"])}


@register("sgd")
def import_sgd(path: Path, options: dict[str, Any], task: Any) -> datasets.Dataset:
    """Rows of SGD dialogues: per user turn with its state, or per system turn."""
    settings = check_options(options, OPTIONS, "sgd")
    files = _dialogue_files(path)
    services = _services(_schema_file(files[0].parent, settings["schema"]))
    rows = []
    for file in files:
        dialogues = read_json(file)
        if not isinstance(dialogues, list):
            raise T2TError(f"{file}: an SGD dialogues file must be a JSON list of dialogues.")
        bad = BadRecords(file, "turns without frames or state", settings["missing_frames"])
        reader = _Reader(settings, services, bad)
        for dialogue in dialogues:
            try:
                rows.extend(reader.rows(dialogue))
            except KeyError as error:
                raise T2TError(f"{file}: dialogue {dialogue.get('dialogue_id', '?')} lacks {error}.") from error
        bad.report()
    return to_dataset(rows, files[0])
