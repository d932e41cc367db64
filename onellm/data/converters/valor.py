"""VALOR-32K (Chen et al., 2023) audio-visual captions: desc_<train|val|test>.json, a JSON
list of {"video_id": "...", "desc": "..."} (`desc` may also be a list of descriptions, and a
video may have several entries), over the videos <video_id>.mp4. One caption sample per
video: its first description as caption, all of them in meta["references"] (what caption
metrics score against). `onellm eval`'s valor32k-test task reads desc_test.json through
`samples` too."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from ..manifest import Sample
from .av_common import MODALITY, MODALITY_HELP, VideoNames, json_list, read_annotation, video_file, video_sample  # noqa: F401 (the converter's, as for every A/V format)
from .common import Media, need, progress

HELP = "VALOR-32K descriptions JSON (desc_train.json, desc_val.json, desc_test.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def samples(path: Path, media: Media, split: str | None = None, modality: str | None = None) -> Iterator[Sample]:
    chosen, split, rows = read_annotation(path, split, modality)
    rows = json_list(rows, "{video_id, desc}")
    captions: dict[str, list[str]] = {}  # video id -> its descriptions, in file order
    seen: set[str] = set()
    for i, row in enumerate(progress(rows, len(rows), f"valor {path.name}")):
        where = f"[{i}]"
        video_id = str(need(row, "video_id", (str, int), where))
        desc = need(row, "desc", (str, list), where)
        for k, text in enumerate([desc] if isinstance(desc, str) else desc):
            if not isinstance(text, str):
                raise ValueError(f"{where}.desc[{k}]: expected a string, got {type(text).__name__}")
            if text.strip():
                captions.setdefault(video_id, []).append(text.strip())
        seen.add(video_id)
    for _ in seen - set(captions):
        media.skip("video without a description")
    names = VideoNames(media.root)
    for video_id, references in captions.items():
        file = video_file(media, names, video_id)
        if file is not None:
            yield video_sample(
                f"valor-{video_id}",
                file,
                chosen,
                caption=references[0],
                split=split,
                meta={"video_id": video_id, "references": references},
            )
