"""The adapter methods t2t_mtl knows, by name: their settings, and where their implementation lives."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from t2t_mtl.adapters.base import AdapterMethod, AdapterSettings
from t2t_mtl.adapters.full.settings import FullSettings
from t2t_mtl.adapters.lora.settings import LoraSettings
from t2t_mtl.adapters.routed.settings import CpolySettings, MhrSettings, PolySettings
from t2t_mtl.errors import T2TError, closest


@dataclass(frozen=True)
class Registration:
    """A method: the pydantic model of its `adapter:` keys and its AdapterMethod as `module:Class`."""

    settings: type[AdapterSettings]
    implementation: str


METHODS: dict[str, Registration] = {}


def register(name: str, settings: type[AdapterSettings], implementation: str) -> None:
    """Make `adapter.type: name` valid; the implementation is imported only when a model is built."""
    if name in METHODS:
        raise T2TError(f"adapter method '{name}' is registered twice")
    METHODS[name] = Registration(settings, implementation)


register("lora", LoraSettings, "t2t_mtl.adapters.lora.method:LoraMethod")
register("poly", PolySettings, "t2t_mtl.adapters.routed.method:RoutedMethod")
register("mhr", MhrSettings, "t2t_mtl.adapters.routed.method:RoutedMethod")
register("cpoly", CpolySettings, "t2t_mtl.adapters.routed.method:RoutedMethod")
register("full", FullSettings, "t2t_mtl.adapters.full.method:FullMethod")


def _registration(name: str) -> Registration:
    if name not in METHODS:
        raise T2TError(f"adapter.type: unknown method '{name}'.{closest(name, METHODS)} "
                       f"Methods: {', '.join(METHODS)}")
    return METHODS[name]


def settings_class(name: str) -> type[AdapterSettings]:
    """The settings model of `adapter.type: name` (a T2TError naming the closest method if unknown)."""
    return _registration(name).settings


@cache
def method_for(name: str) -> AdapterMethod:
    """The implementation of `adapter.type: name`."""
    module, cls = _registration(name).implementation.split(":")
    return getattr(importlib.import_module(module), cls)(name)
