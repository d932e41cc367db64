"""Clotho v2 captions: `clotho_captions_<development|validation|evaluation>.csv` with
columns file_name, caption_1 .. caption_5; one audio sample per clip."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ...errors import BadInputError
from ..manifest import Sample
from .common import Media, read_table

HELP = "Clotho v2 captions CSV (clotho_captions_development.csv)"
MODALITY = "audio"
SPLIT_WORDS = {"development": "train", "validation": "val", "evaluation": "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--per-caption", action="store_true", help="one row per caption instead of per clip")


def samples(
    path: Path, media: Media, split: str | None = None, modality: str | None = None, per_caption: bool = False
) -> Iterator[Sample]:
    split = split or _split_from_name(path)
    names, rows = read_table(path)
    lower = [n.lower() for n in names]
    if "file_name" not in lower:
        raise BadInputError(f"{path}:1", f"no 'file_name' column (columns: {', '.join(names)})")
    file_col = lower.index("file_name")
    caption_cols = [i for i, n in enumerate(lower) if n.startswith("caption")]
    if not caption_cols:
        raise BadInputError(f"{path}:1", "no caption_1 .. caption_5 columns")
    for line, row in rows:
        if len(row) != len(names):
            raise BadInputError(f"{path}:{line}", f"{len(row)} fields, expected {len(names)}")
        captions = [row[i].strip() for i in caption_cols if row[i].strip()]
        if not captions:
            media.skip("clip without captions")
            continue
        files = media.files([row[file_col]])
        if files is None:
            continue
        stem = Path(row[file_col]).stem
        base = Sample(
            id=f"clotho-{stem}",
            modality=modality or MODALITY,
            files=files,
            caption=captions[0],
            split=split,
            meta={"references": captions},
        )
        if per_caption:
            yield from (replace(base, id=f"{base.id}-{k}", caption=c) for k, c in enumerate(captions))
        else:
            yield base


def _split_from_name(path: Path) -> str:
    for word, split in SPLIT_WORDS.items():
        if word in path.name.lower():
            return split
    raise BadInputError(
        path, f"cannot tell the split from the file name (expected one of {', '.join(SPLIT_WORDS)}); give --split"
    )
