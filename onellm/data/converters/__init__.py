"""Converters to onellm manifests: from public datasets' published annotation files, and
from your own files (`tsv`: a table of paths and captions; `folder`: a folder of files).

A converter is a module with `HELP` (and optionally a longer `DESCRIPTION`), `MODALITY` (its
default), `add_arguments(parser)` for its own options and `samples(path, media, split=,
modality=, **options) -> Iterator[Sample]`; `MEDIA_IS_INPUT = True` where the source is the
media folder itself, so that `media_root` may be left out.
`convert()` runs one by format name and writes the manifest atomically."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import BadInputError
from ..manifest import write_manifest
from .common import Media, Report, split_option

# format name -> module in this package (imported on use: each needs only its own format)
CONVERTERS = {
    "coco": "coco",
    "tsv": "tsv",
    "clotho": "clotho",
    "cap3d": "cap3d",
    "pointllm": "pointllm",
    "ego4d-imu": "ego4d_imu",
    "nsd": "nsd",
    "llava": "llava",
    "folder": "folder",
}


def get_converter(name: str) -> ModuleType:
    if name not in CONVERTERS:
        raise ValueError(f"unknown dataset format {name!r}; known: {', '.join(CONVERTERS)}")
    return importlib.import_module(f"{__name__}.{CONVERTERS[name]}")


def convert(fmt: str, source: Path | str, out: Path | str, media_root: Path | str | None = None,
            check_files: bool = False, split: str | None = None, modality: str | None = None, **options: Any) -> Report:
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


__all__ = ["CONVERTERS", "Media", "Report", "convert", "get_converter"]
