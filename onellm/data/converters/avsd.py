"""AVSD, the audio-visual scene-aware dialogs of DSTC7/DSTC8 (train_set4DSTC7-AVSD.json,
valid_set4DSTC7-AVSD.json, test_set4DSTC7-AVSD.json, ...):

    {"dialogs": [{"image_id": "QYYKX", "caption": "...", "summary": "...",
                  "dialog": [{"question": "...", "answer": "..."}, ...]}]}

over the Charades videos <image_id>.mp4. One sample per dialog: its turns as qa pairs (each
keeping its turn number), the caption as caption, and the caption and summary in
meta["references"]. The first test release hides each dialog's last answer as
"__UNDISCLOSED__": such turns are left out and counted (the labelled release,
lbl_test_set4DSTC7-AVSD.json, has them). `onellm eval`'s avsd-test task reads the test
file through `samples` too."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..manifest import Sample
from .av_common import MODALITY, MODALITY_HELP, VideoNames, read_annotation, video_file, video_sample  # noqa: F401 (the converter's, as for every A/V format)
from .common import Media, need, progress

HELP = "AVSD dialogs JSON (train_set4DSTC7-AVSD.json, ...) over Charades videos"
HIDDEN = "__UNDISCLOSED__"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def samples(path: Path, media: Media, split: str | None = None, modality: str | None = None) -> Iterator[Sample]:
    chosen, split, data = read_annotation(path, split, modality)
    dialogs = need(data, "dialogs", list, "top level")
    names = VideoNames(media.root)
    seen: Counter[str] = Counter()  # a video with two dialogs gets two ids
    for i, dialog in enumerate(progress(dialogs, len(dialogs), f"avsd {path.name}")):
        where = f"dialogs[{i}]"
        video_id = str(need(dialog, "image_id", (str, int), where))
        qa = _turns(need(dialog, "dialog", list, where), where, media)
        caption, summary = _text(dialog, "caption"), _text(dialog, "summary")
        references = [t for t in (caption, summary) if t]
        if not qa and not references:
            media.skip("dialog without answered turns or a caption")
            continue
        seen[video_id] += 1
        id = f"avsd-{video_id}" + (f"-{seen[video_id] - 1}" if seen[video_id] > 1 else "")
        file = video_file(media, names, video_id)
        if file is None:
            continue
        meta: dict[str, Any] = {"video_id": video_id, **({"references": references} if references else {})}
        yield video_sample(id, file, chosen, caption=caption, qa=qa, split=split, meta=meta)


def _text(dialog: dict[str, Any], key: str) -> str | None:
    """A caption or summary; the test releases leave some out or null."""
    value = dialog.get(key)
    return (value.strip() or None) if isinstance(value, str) else None


def _turns(turns: list, where: str, media: Media) -> list[dict[str, Any]]:
    qa = []
    for n, turn in enumerate(turns):
        at = f"{where}.dialog[{n}]"
        question, answer = need(turn, "question", str, at).strip(), need(turn, "answer", str, at).strip()
        if answer == HIDDEN:
            media.skip(f"turn with a hidden answer ({HIDDEN})")
            continue
        qa.append({"question": question, "answer": answer, "turn": n})
    return qa
