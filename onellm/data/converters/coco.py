"""COCO captions: the official `captions_<split><year>.json` or Karpathy's `dataset_coco.json`.

One image sample per image: the first caption as `caption`, all of them in
meta["references"] (what caption metrics score against); `per_caption` writes one row per
caption instead, the way caption training often reads COCO. `onellm eval`'s
coco-karpathy-test task reads dataset_coco.json through `samples` too."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..manifest import Sample
from .common import Media, load_json, need, progress

HELP = "COCO captions JSON (captions_train2017.json) or Karpathy's dataset_coco.json"
MODALITY = "image"
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--per-caption", action="store_true", help="one row per caption instead of per image")


def samples(
    path: Path, media: Media, split: str | None = None, modality: str | None = None, per_caption: bool = False
) -> Iterator[Sample]:
    data = load_json(path)
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError("expected an object with 'images' (COCO captions or Karpathy's dataset_coco.json)")
    images = need(data, "images", list, "top level")
    rows = _karpathy(images, split) if "annotations" not in data else _official(data, images, path, split, media)
    for image_id, file_name, captions, row_split in progress(rows, len(images), f"coco {path.name}"):
        if not captions:
            media.skip("image without captions")
            continue
        files = media.files([file_name])
        if files is None:
            continue
        base = Sample(
            id=f"coco-{image_id}",
            modality=modality or MODALITY,
            files=files,
            caption=captions[0],
            split=row_split,
            meta={"references": captions, "image_id": image_id},
        )
        if not per_caption:
            yield base
            continue
        for k, caption in enumerate(captions):
            yield replace(base, id=f"{base.id}-{k}", caption=caption)


def _official(
    data: dict[str, Any], images: list, path: Path, split: str | None, media: Media
) -> Iterator[tuple[Any, str, list[str], str]]:
    """captions_<split><year>.json: the split is the argument, else the file name's."""
    split = split or _split_from_name(path.name)
    captions: dict[Any, list[str]] = {}
    for i, ann in enumerate(need(data, "annotations", list, "top level")):
        where = f"annotations[{i}]"
        captions.setdefault(need(ann, "image_id", (int, str), where), []).append(
            need(ann, "caption", str, where).strip()
        )
    known = set()
    for i, image in enumerate(images):
        where = f"images[{i}]"
        image_id = need(image, "id", (int, str), where)
        known.add(image_id)
        yield image_id, need(image, "file_name", str, where), captions.get(image_id, []), split
    for image_id in set(captions) - known:
        media.skip(f"captions of an image id not in 'images' ({image_id})")


def _karpathy(images: list, only: str | None) -> Iterator[tuple[Any, str, list[str], str]]:
    """dataset_coco.json names each image's split; `only` keeps one of them."""
    for i, image in enumerate(images):
        where = f"images[{i}]"
        raw_split = need(image, "split", str, where)
        if raw_split not in KARPATHY_SPLITS:
            raise ValueError(f"{where}.split: {raw_split!r} is not one of {', '.join(KARPATHY_SPLITS)}")
        split = KARPATHY_SPLITS[raw_split]
        if only is not None and split != only:
            continue
        folder = image.get("filepath", "")
        name = need(image, "filename", str, where)
        sentences = need(image, "sentences", list, where)
        captions = [need(s, "raw", str, f"{where}.sentences[{k}]").strip() for k, s in enumerate(sentences)]
        image_id = image.get("cocoid", image.get("imgid", i))
        yield image_id, f"{folder}/{name}" if folder else name, captions, split


def _split_from_name(name: str) -> str:
    lower = name.lower()
    for word, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if word in lower:
            return split
    return "train"
