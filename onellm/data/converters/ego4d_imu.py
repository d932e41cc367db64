"""Ego4D narrations (`narration.json`) over per-video IMU files -> IMU samples: one per
narration, a 2 s window around its timestamp (meta start/end, seconds from the IMU file's
first sample, which the IMU loader cuts), the narration as caption.

The IMU file of video <uid> is `<uid>.<ext>` under the media root, in a form the IMU loader
reads: an [N, 6] .npy (accelerometer then gyroscope; give `sample_rate`) or a .csv with a
`timestamp` column in seconds and the six channel columns."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from ..manifest import Sample
from .common import Media, load_json, need, progress

HELP = "Ego4D narration.json over per-video IMU files (<video_uid>.npy|.csv)"
MODALITY = "imu"
WINDOW = 2.0  # seconds: the published IMU tokenizer reads 2 s at 200 Hz
# Narrations read "#C C opens the door" (C: the camera wearer); "#O" marks other people,
# "#unsure" the annotator's doubt. Captions keep the sentence only.
TAGS = re.compile(r"#\s*(?:c\s+c\b|c\b|o\b|unsure\b|summary\b)", re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--imu-ext", default=".npy", help="IMU file extension (default: .npy)")
    parser.add_argument(
        "--sample-rate", type=float, help="IMU sample rate in Hz, stored in meta (needed for .npy files)"
    )
    parser.add_argument(
        "--passes",
        default="narration_pass_1",
        help="comma-separated narration passes to read (default: narration_pass_1)",
    )


def clean_narration(text: str) -> str:
    return " ".join(TAGS.sub(" ", text).split()).strip(" .")


def samples(
    path: Path,
    media: Media,
    split: str | None = None,
    modality: str | None = None,
    imu_ext: str = ".npy",
    sample_rate: float | None = None,
    passes: str = "narration_pass_1",
) -> Iterator[Sample]:
    videos = load_json(path)
    if not isinstance(videos, dict):
        raise ValueError("expected an object {video_uid: {narration_pass_1: {narrations: [...]}}}")
    ext = imu_ext if imu_ext.startswith(".") else f".{imu_ext}"
    wanted = [p.strip() for p in passes.split(",") if p.strip()]
    for uid, video in progress(videos.items(), len(videos), f"ego4d {path.name}"):
        if not isinstance(video, dict):
            raise ValueError(f"{uid}: expected an object of narration passes, got {type(video).__name__}")
        narrations = [
            (name, k, n)
            for name in wanted
            if isinstance(video.get(name), dict)
            for k, n in enumerate(need(video[name], "narrations", list, f"{uid}.{name}"))
        ]
        if not narrations:
            media.skip("video without narrations")
            continue
        files = media.files([f"{uid}{ext}"])
        if files is None:
            continue
        for name, k, narration in narrations:
            where = f"{uid}.{name}.narrations[{k}]"
            t = float(need(narration, "timestamp_sec", (int, float), where))
            caption = clean_narration(need(narration, "narration_text", str, where))
            if not caption:
                media.skip("narration with no text after its tags")
                continue
            start = max(0.0, t - WINDOW / 2)
            meta = {"start": round(start, 3), "end": round(start + WINDOW, 3), "video_uid": uid}
            if sample_rate:
                meta["sample_rate"] = sample_rate
            suffix = "" if name == wanted[0] else f"-{name.rsplit('_', 1)[-1]}"
            yield Sample(
                id=f"ego4d-{uid}-{k}{suffix}",
                modality=modality or MODALITY,
                files=files,
                caption=caption,
                split=split or "train",
                meta=meta,
            )
