"""The preset registry: named RunConfig factories, listed in the order they were registered."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from grokscope.config import RunConfig
from grokscope.errors import ConfigError

__all__ = ["get_preset", "list_presets", "preset"]

PRESETS: dict[str, Callable[[], RunConfig]] = {}


def preset(fn: Callable[[], RunConfig]) -> Callable[[], RunConfig]:
    """Register `fn` (no arguments -> RunConfig) as the preset named after it."""
    PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> dict[str, str]:
    """{name: docstring} for every preset."""
    return {name: inspect.getdoc(fn) or "" for name, fn in PRESETS.items()}


def get_preset(name: str) -> RunConfig:
    """The RunConfig of preset `name`; ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
