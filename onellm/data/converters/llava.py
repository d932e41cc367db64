"""LLaVA-style instruction data (llava_instruct_150k.json and the like): a JSON list of
{id, <media key>: file, conversations: [{from: human|gpt, value}]}.

The modality is the item's media key ("image", "video", "audio", "point", ... any
registered modality), or the argument; "<image>"-style placeholders leave the text, since
the processor inserts the modality tokens itself."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from ..manifest import Sample
from .common import Media, conversation, load_json, need, progress

HELP = "LLaVA-style instruction JSON: [{id, image|video|audio|point..., conversations}]"
MODALITY = None
MODALITY_HELP = "default: each item's media key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media-key", help="the items' media field (default: the first registered modality name present)"
    )
    parser.add_argument("--id-prefix", default="llava", help="prefix of the sample ids (default: llava)")


def samples(
    path: Path,
    media: Media,
    split: str | None = None,
    modality: str | None = None,
    media_key: str | None = None,
    id_prefix: str = "llava",
) -> Iterator[Sample]:
    from ...processor import PLACEHOLDER  # torch and the plugins load only when converting
    from ...registry import list_modalities

    items = load_json(path)
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of items")
    keys = [media_key] if media_key else ([modality] if modality else list_modalities())
    placeholders = [f"<{k}>" for k in list_modalities()] + [PLACEHOLDER]
    for i, item in enumerate(progress(items, len(items), f"llava {path.name}")):
        where = f"[{i}]"
        key = next((k for k in keys if isinstance(item, dict) and k in item), None)
        turns = conversation(need(item, "conversations", list, where), f"{where}.conversations", placeholders)
        if key is None:
            media.skip("item without a media file (text-only)")
            continue
        name = need(item, key, (str, list), where)
        if isinstance(name, list):
            media.skip("item with several media files")
            continue
        files = media.files([name])
        if files is None:
            continue
        yield Sample(
            id=f"{id_prefix}-{item.get('id', i)}",
            modality=modality or key,
            files=files,
            conversations=turns,
            split=split or "train",
        )
