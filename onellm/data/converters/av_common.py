"""What the audio-visual benchmarks' converters share (MUSIC-AVQA, AVSD, VALOR-32K): each
names a video by id, and a sample asks about both its pictures and its own soundtrack, as
two inputs of the same file. `--modality video` (or `audio`) keeps one of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import BadInputError
from ..manifest import Sample, joined_modality, split_modality
from .common import Media, file_sample, load_json

MODALITY = "video+audio"
MODALITY_HELP = "default: video+audio, a video and its soundtrack as two inputs; video or audio keeps one"
STREAMS = ("video", "audio")  # what one video file holds
# .mp4 first: what the three benchmarks publish; the rest where a re-encode or download differs.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
# Words of the annotation files' names (avqa-val.json, valid_set4DSTC7-AVSD.json, desc_test.json).
SPLIT_WORDS = (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test"))


def streams(modality: str | None) -> list[str]:
    """The inputs to write, in prompt order, from the --modality option."""
    chosen = split_modality(modality or MODALITY)
    unknown = [m for m in chosen if m not in STREAMS]
    if unknown or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"--modality {modality!r}: a video gives only video and audio inputs (once each), "
            "e.g. video+audio, video or audio"
        )
    return chosen


def read_annotation(path: Path, split: str | None, modality: str | None) -> tuple[list[str], str, Any]:
    """What every audio-visual converter starts from: the streams to write, the split and the
    parsed annotation file."""
    return streams(modality), split_from_name(path, split), load_json(path)


def json_list(rows: Any, what: str) -> list:
    """`rows` when the file's top level is a list (of `what`)."""
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON list of {what}, got {type(rows).__name__}")
    return rows


def split_from_name(path: Path, split: str | None) -> str:
    """`split` when given, else the split the file's name says."""
    if split is not None:
        return split
    lower = path.name.lower()
    for word, found in SPLIT_WORDS:
        if word in lower:
            return found
    raise BadInputError(
        path, "cannot tell the split from the file name (expected train, val or test in it); give --split"
    )


class VideoNames:
    """A video id's file name under the media root: <id>.mp4, or <id> with another video
    extension when only that one is there. The folder is listed once, not stat-ed per video
    (slow on network storage); a folder holding no videos itself is searched one level down
    (MUSIC-AVQA ships its real and synthetic videos as two folders). An id found nowhere is
    <id>.mp4, which --check-files then reports missing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names: dict[str, str] | None = None

    def name(self, video_id: str) -> str:
        if self._names is None:
            self._names = self._index()
        return self._names.get(video_id, f"{video_id}{VIDEO_EXTENSIONS[0]}")

    def _index(self) -> dict[str, str]:
        found = self._videos(self.root, "")
        if not found:
            for sub in sorted(_entries(self.root), key=lambda e: e.name):
                if not sub.name.startswith(".") and sub.is_dir():
                    found += self._videos(Path(sub.path), f"{sub.name}/")
        # The preferred extension wins; between sub-folders, the first in name order.
        found.sort(key=lambda f: VIDEO_EXTENSIONS.index(Path(f[1]).suffix.lower()))
        names: dict[str, str] = {}
        for stem, name in found:
            names.setdefault(stem, name)
        return names

    @staticmethod
    def _videos(folder: Path, prefix: str) -> list[tuple[str, str]]:
        return [
            (Path(e.name).stem, prefix + e.name)
            for e in sorted(_entries(folder), key=lambda e: e.name)
            if Path(e.name).suffix.lower() in VIDEO_EXTENSIONS and e.is_file()
        ]


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):  # media not fetched yet: names stay <id>.mp4
        return []


def video_sample(id: str, file: str, modalities: list[str], **fields: Any) -> Sample:
    """A sample of one video file: one input per stream, or a single-input sample."""
    return file_sample(joined_modality(modalities), [file], id=id, **fields)


def video_file(media: Media, names: VideoNames, video_id: str) -> str | None:
    """The manifest path of a video, or None (counted by `media`) when --check-files misses it."""
    files = media.files([names.name(video_id)])
    return files[0] if files else None
