"""PointLLM instruction data (PointLLM_brief_description_660K_filtered.json,
PointLLM_complex_instruction_70K.json): a JSON list of {object_id, conversations} over the
`<object_id>_8192.npy` clouds. A single question/answer (a brief description) also gives
its answer as `caption`, so the alignment stage can read the same manifest. OneLLM's own
evaluation file, a JSON object {object_id: caption or [captions]}, gives caption samples
with every caption in meta["references"] (the eval task reads either form through here)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from ..manifest import Sample
from .common import Media, conversation, load_json, need, progress

HELP = "PointLLM JSON: [{object_id, conversations: [{from, value}]}] over <object_id>_8192.npy"
MODALITY = "point"
CLOUD_NAME = "{uid}_8192.npy"  # PointLLM's release: 8192 points per object


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cloud-name", default=CLOUD_NAME, help=f"cloud file name under --media-root (default: {CLOUD_NAME})"
    )


def samples(
    path: Path, media: Media, split: str | None = None, modality: str | None = None, cloud_name: str = CLOUD_NAME
) -> Iterator[Sample]:
    items = load_json(path)
    if isinstance(items, dict):
        yield from _captioned(items, media, split, modality, cloud_name)
        return
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of {object_id, conversations} or an object {object_id: caption}")
    seen: dict[str, int] = {}
    for i, item in enumerate(progress(items, len(items), f"pointllm {path.name}")):
        where = f"[{i}]"
        uid = need(item, "object_id", str, where)
        turns = conversation(need(item, "conversations", list, where), f"{where}.conversations", ("<point>",))
        files = media.files([cloud_name.format(uid=uid)])
        if files is None:
            continue
        answers = [t["value"] for t in turns if t["from"] == "gpt"]
        caption = answers[0] if len(turns) == 2 and answers else None
        # An object has several conversations in the complex-instruction file.
        n = seen[uid] = seen.get(uid, -1) + 1
        yield Sample(
            id=f"pointllm-{uid}" + (f"-{n}" if n else ""),
            modality=modality or MODALITY,
            files=files,
            caption=caption,
            conversations=turns,
            split=split or "train",
        )


def _captioned(
    captions: dict, media: Media, split: str | None, modality: str | None, cloud_name: str
) -> Iterator[Sample]:
    for uid, given in captions.items():
        refs = [given] if isinstance(given, str) else given
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"[{uid!r}]: expected a caption or a list of captions")
        files = media.files([cloud_name.format(uid=uid)])
        if files is not None:
            yield Sample(
                id=f"pointllm-{uid}",
                modality=modality or MODALITY,
                files=files,
                caption=refs[0].strip(),
                split=split or "train",
                meta={"references": [r.strip() for r in refs]},
            )
