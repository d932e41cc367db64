"""The modality registry: built-ins and plugins alike arrive through the `onellm.modalities`
entry-point group, discovered on first use; `register_modality` covers notebooks and tests."""
from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points

from .modality import ModalitySpec

ENTRY_POINT_GROUP = "onellm.modalities"

_specs: dict[str, ModalitySpec] = {}
_sources: dict[str, str] = {}
_failures: dict[str, str] = {}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    if os.environ.get("ONELLM_DISABLE_PLUGIN_AUTOLOAD"):
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in _specs:
            if _sources[ep.name] == dist:
                continue  # the same distribution seen twice on sys.path
            raise RuntimeError(
                f"modality {ep.name!r} is registered by both {_sources[ep.name]} and {dist}; uninstall one"
            )
        try:
            spec = ep.load()
            if not isinstance(spec, ModalitySpec):
                raise TypeError(f"{ep.value} is a {type(spec).__name__}, not a ModalitySpec")
            if spec.name != ep.name:
                raise ValueError(f"entry point {ep.name!r} points at a spec named {spec.name!r}")
        except Exception as err:  # a broken plugin must not take the others down
            _failures[ep.name] = f"{dist}: {type(err).__name__}: {err}"
            warnings.warn(f"modality plugin {ep.name!r} could not be loaded ({_failures[ep.name]})", stacklevel=3)
            continue
        _specs[ep.name] = spec
        _sources[ep.name] = dist


def register_modality(spec: ModalitySpec, source: str = "runtime", replace: bool = False) -> None:
    """Register a modality by hand (notebooks, tests); plugins use the entry point instead."""
    _discover()
    if spec.name in _specs and not replace:
        raise ValueError(f"modality {spec.name!r} is already registered by {_sources[spec.name]}")
    _specs[spec.name] = spec
    _sources[spec.name] = source
    _failures.pop(spec.name, None)


def get_modality(name: str) -> ModalitySpec:
    _discover()
    if name in _specs:
        return _specs[name]
    if name in _failures:
        raise RuntimeError(f"modality {name!r} is installed but failed to load: {_failures[name]}")
    raise KeyError(f"unknown modality {name!r}; installed: {', '.join(list_modalities()) or 'none'}; "
                   "a modality from elsewhere needs the plugin package that provides it installed")


def list_modalities() -> list[str]:
    _discover()
    return list(_specs)


def modality_source(name: str) -> str:
    _discover()
    return _sources[name]


def failed_modalities() -> dict[str, str]:
    _discover()
    return dict(_failures)
