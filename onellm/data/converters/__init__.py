"""Converters to onellm manifests: from public datasets' published annotation files, and
from your own files (`tsv`: a table of paths and captions; `folder`: a folder of files).

A converter is a module with `HELP` (and optionally a longer `DESCRIPTION`), `MODALITY` (its
default), `add_arguments(parser)` for its own options and `samples(path, media, split=,
modality=, **options) -> Iterator[Sample]`; `MEDIA_IS_INPUT = True` where the source is the
media folder itself, so that `media_root` may be left out. Converters are registered by
format name in the `onellm.converters` entry-point group (`coco = "onellm.data.converters.coco"`),
onellm's own as a plugin's. `convert()` runs one by format name and writes the manifest
atomically."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import BadInputError
from ...registry import Registry
from ..manifest import write_manifest
from .common import Media, Report, split_option


def _converter(name: str, module: Any) -> list[tuple[str, ModuleType]]:
    missing = [a for a in ("HELP", "MODALITY", "add_arguments", "samples") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"entry point {name!r} gives {module!r}, which lacks {', '.join(missing)}")
    return [(name, module)]


# Format name -> converter module; iterating gives the names, `in` tests one.
CONVERTERS: Registry[ModuleType] = Registry("onellm.converters", "dataset format", _converter)


def get_converter(name: str) -> ModuleType:
    """The converter of format `name`; an unknown name is a ValueError (and a KeyError)."""
    return CONVERTERS.get(name)


def register_converter(name: str, module: ModuleType, replace: bool = False) -> None:
    """Register a converter by hand (notebooks, tests); plugins use the entry point instead."""
    CONVERTERS.register(name, module, replace=replace)


def convert(
    fmt: str,
    source: Path | str,
    out: Path | str,
    media_root: Path | str | None = None,
    check_files: bool = False,
    split: str | None = None,
    modality: str | None = None,
    **options: Any,
) -> Report:
    """Write the manifest `out` from the annotation file `source`; media paths in it point
    under `media_root`, relative to `out`'s folder. Returns what was written and skipped.
    `media_root` may be left out only where the source is the media folder (`folder`)."""
    converter = get_converter(fmt)
    source = Path(source)
    if not source.exists():
        raise BadInputError(source, "no such file")
    if media_root is None and not getattr(converter, "MEDIA_IS_INPUT", False):
        raise ValueError(f"{fmt}: give the folder its media names are relative to (--media-root)")
    media = Media(source if media_root is None else media_root, out, check_files)
    rows = converter.samples(source, media, split=split_option(split), modality=modality, **options)
    try:
        media.report.written = write_manifest(out, rows)
    except BadInputError:
        raise
    except ValueError as err:  # a structural problem found by `need`: name the file
        raise BadInputError(source, str(err)) from err
    return media.report


__all__ = ["CONVERTERS", "Media", "Report", "convert", "get_converter", "register_converter"]
