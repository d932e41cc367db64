"""Registries of named things that plugins extend. `Registry` is the shape of each; this
module holds two, modalities (`onellm.modalities`) and synthetic scenes of several inputs
(`onellm.scenes`); eval tasks (`onellm.eval_tasks`, in eval/tasks.py) and data converters
(`onellm.converters`, in onellm/data/converters/) build theirs on it. onellm's own entries
arrive through the same entry-point groups as a plugin's, discovered on first use;
`register` covers notebooks and tests. ONELLM_DISABLE_PLUGIN_AUTOLOAD switches discovery off."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .modality import ModalitySpec
from .scene import SceneSpec

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no registry entry has: a KeyError to lookups, a ValueError to argument checks."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Entries of one `kind` by name. `entries(entry_point_name, loaded_object)` checks what
    an entry point gave and returns its (name, entry) pairs; whatever it raises marks that
    entry point as failed (reported by `failures()`, warned once) without taking the others
    down. The same name from two distributions is an error naming both."""

    def __init__(
        self, group: str, kind: str, entries: Callable[[str, Any], Iterable[tuple[str, T]]], hint: str = ""
    ) -> None:
        self.group, self.kind, self.hint = group, kind, hint
        self._entries = entries
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self._discovered = False

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if os.environ.get("ONELLM_DISABLE_PLUGIN_AUTOLOAD"):
            return
        for ep in entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                found = list(self._entries(ep.name, ep.load()))
            except Exception as err:  # a broken plugin must not take the others down
                self._failures[ep.name] = f"{dist}: {type(err).__name__}: {err}"
                warnings.warn(
                    f"{self.kind} plugin {ep.name!r} could not be loaded ({self._failures[ep.name]})", stacklevel=4
                )
                continue
            for name, item in found:
                if name in self._items and self._sources[name] != dist:
                    raise RuntimeError(
                        f"{self.kind} {name!r} is registered by both {self._sources[name]} and {dist}; uninstall one"
                    )
                self._items[name], self._sources[name] = item, dist  # the same distribution twice: the same entry

    def register(self, name: str, item: T, source: str = "runtime", replace: bool = False) -> None:
        self._discover()
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered by {self._sources[name]}")
        self._items[name], self._sources[name] = item, source
        self._failures.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget a runtime registration (tests, notebooks); unknown names are ignored."""
        self._items.pop(name, None)
        self._sources.pop(name, None)

    def get(self, name: str) -> T:
        self._discover()
        if name in self._items:
            return self._items[name]
        if name in self._failures:
            raise RuntimeError(f"{self.kind} {name!r} is installed but failed to load: {self._failures[name]}")
        raise UnknownName(f"unknown {self.kind} {name!r}; installed: {', '.join(self.names()) or 'none'}{self.hint}")

    def names(self) -> list[str]:
        self._discover()
        return list(self._items)

    def items(self) -> dict[str, T]:
        self._discover()
        return dict(self._items)

    def source(self, name: str) -> str:
        self._discover()
        return self._sources[name]

    def failures(self) -> dict[str, str]:
        self._discover()
        return dict(self._failures)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()


def _modality(name: str, spec: Any) -> list[tuple[str, ModalitySpec]]:
    if not isinstance(spec, ModalitySpec):
        raise TypeError(f"entry point {name!r} gives a {type(spec).__name__}, not a ModalitySpec")
    if spec.name != name:
        raise ValueError(f"entry point {name!r} points at a spec named {spec.name!r}")
    return [(name, spec)]


MODALITIES: Registry[ModalitySpec] = Registry(
    "onellm.modalities",
    "modality",
    _modality,
    hint="; a modality from elsewhere needs the plugin package that provides it installed",
)


def _scene(name: str, spec: Any) -> list[tuple[str, SceneSpec]]:
    if not isinstance(spec, SceneSpec) or spec.name != name:
        raise TypeError(f"entry point {name!r} must give a SceneSpec named {name!r}")
    return [(name, spec)]


SCENES: Registry[SceneSpec] = Registry("onellm.scenes", "scene", _scene)


def register_modality(spec: ModalitySpec, source: str = "runtime", replace: bool = False) -> None:
    """Register a modality by hand (notebooks, tests); plugins use the entry point instead."""
    MODALITIES.register(spec.name, spec, source, replace)


def get_modality(name: str) -> ModalitySpec:
    return MODALITIES.get(name)


def list_modalities() -> list[str]:
    return MODALITIES.names()


def modality_source(name: str) -> str:
    return MODALITIES.source(name)


def failed_modalities() -> dict[str, str]:
    return MODALITIES.failures()


def caption_prompt(modalities: list[str] | tuple[str, ...]) -> str:
    """The caption request for a sample's inputs: the modality's own for one input, one
    naming them all for several."""
    if len(modalities) == 1:
        return get_modality(modalities[0]).caption_prompt()
    named = ", ".join(modalities[:-1]) + f" and {modalities[-1]}"
    return f"Provide a one-sentence caption for the provided {named}."
