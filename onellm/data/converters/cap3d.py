"""Cap3D captions (`Cap3D_automated_Objaverse.csv`: uid, caption, no header) -> point
samples reading PointLLM's `<uid>_8192.npy` clouds (xyz + rgb), which OneLLM trained on."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from ...errors import BadInputError
from ..manifest import Sample
from .common import Media, count_lines, progress, read_table

HELP = "Cap3D captions CSV (uid,caption; no header) over PointLLM's <uid>_8192.npy clouds"
MODALITY = "point"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cloud-name", default="{uid}_8192.npy", help="cloud file name under --media-root (default: {uid}_8192.npy)"
    )


def samples(
    path: Path, media: Media, split: str | None = None, modality: str | None = None, cloud_name: str = "{uid}_8192.npy"
) -> Iterator[Sample]:
    _, rows = read_table(path, header=False)
    for line, row in progress(rows, count_lines(path), f"cap3d {path.name}"):
        if len(row) < 2:
            raise BadInputError(f"{path}:{line}", "expected uid,caption")
        # An unquoted comma inside a caption splits it: the rest of the row is the caption.
        uid, caption = row[0].strip(), ",".join(row[1:]).strip()
        if not uid:
            raise BadInputError(f"{path}:{line}", "empty uid")
        if not caption:
            media.skip("empty caption")
            continue
        files = media.files([cloud_name.format(uid=uid)])
        if files is None:
            continue
        yield Sample(
            id=f"cap3d-{uid}", modality=modality or MODALITY, files=files, caption=caption, split=split or "train"
        )
