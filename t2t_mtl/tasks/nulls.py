"""The value a source puts in a row for a null or missing column; templates see it as undefined."""

from jinja2 import StrictUndefined, UndefinedError


class NullFieldError(UndefinedError):
    """A template read a field whose value is null or missing in its row."""


class NullValue(StrictUndefined):
    """A field that is null or missing in one row: reading it raises `NullFieldError` with the hint."""

    __slots__ = ()

    def __init__(self, hint: str, name: str) -> None:
        super().__init__(hint=hint, name=name, exc=NullFieldError)

    def __repr__(self) -> str:
        return f"null ({self._undefined_hint})"
