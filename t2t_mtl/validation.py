"""Turn pydantic validation errors into messages that name the place and the fix."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from t2t_mtl.errors import closest


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a location path through nested models; None where it leaves models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _first_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    """The first pydantic model inside an annotation such as `list[X] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None


def describe_validation_error(error: ValidationError, where: str, model: type[BaseModel]) -> str:
    """One line per problem: `where: key.path: message`, suggesting the closest valid key."""
    lines = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not str(part).startswith("function-after"))
        dotted = ".".join(str(part) for part in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            hint = closest(str(loc[-1]), parent.model_fields) if parent else ""
            valid = f" Valid keys here: {', '.join(sorted(parent.model_fields))}." if parent else ""
            lines.append(f"unknown key '{dotted}'.{hint}{valid}")
        else:
            got = item.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            lines.append(f"{dotted}: {item['msg']}{shown}")
    return f"{where}:\n  " + "\n  ".join(lines)
