"""Mixers by name, so a config line picks the operator: ``build_mixer("s5", d_model=64, state_size=32)``."""

from collections.abc import Callable
from typing import Any

from .base import Mixer

_MIXERS: dict[str, type[Mixer]] = {}


def register_mixer(name: str) -> Callable[[type[Mixer]], type[Mixer]]:
    """Class decorator: make a ``Mixer`` subclass buildable as ``build_mixer(name, ...)``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a mixer name must be a non-empty str, got {name!r}")

    def add(cls: type[Mixer]) -> type[Mixer]:
        if not (isinstance(cls, type) and issubclass(cls, Mixer)):
            raise TypeError(f"register_mixer({name!r}) decorates Mixer subclasses, got {cls!r}")
        if name in _MIXERS and _MIXERS[name] is not cls:
            raise ValueError(f"mixer {name!r} is already registered as {_MIXERS[name].__qualname__}")
        _MIXERS[name] = cls
        return cls

    return add


def available_mixers() -> list[str]:
    """The registered names, sorted."""
    return sorted(_MIXERS)


def build_mixer(name: str, d_model: int, **cfg: Any) -> Mixer:
    """A new mixer ``name`` of width ``d_model``; ``cfg`` goes to its constructor."""
    if name not in _MIXERS:
        raise ValueError(f"unknown mixer {name!r}; registered: {available_mixers()}")
    return _MIXERS[name](d_model=d_model, **cfg)
