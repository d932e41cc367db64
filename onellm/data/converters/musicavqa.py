"""MUSIC-AVQA (Li et al., CVPR 2022): avqa-<train|val|test>.json, a JSON list of questions

    {"video_id": "00000272", "question_id": 2, "type": "[\"Audio\", \"Counting\"]",
     "question_content": "How many <Object> are in the entire video?",
     "templ_values": "[\"piano\"]", "question_deleted": 0, "anser": "two"}

as published: the answer's key is spelled `anser`, and `type` and `templ_values` are JSON
text. Each <...> slot of a question is filled in order from templ_values. One sample per
video (<video_id>.mp4) with all its questions as qa pairs, each keeping its question_id and
type ("Audio", "Counting"), by which the benchmark reports accuracy; questions marked
deleted are skipped and counted. `onellm eval`'s music-avqa-test task reads avqa-test.json
through `samples` too."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..manifest import Sample
from .av_common import MODALITY, MODALITY_HELP, VideoNames, json_list, read_annotation, video_file, video_sample  # noqa: F401 (the converter's, as for every A/V format)
from .common import Media, need, progress

HELP = "MUSIC-AVQA questions JSON (avqa-train.json, avqa-val.json, avqa-test.json)"
SLOT = re.compile(r"<[^<>]*>")  # "<Object>", "<LR>": what templ_values fill


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def samples(path: Path, media: Media, split: str | None = None, modality: str | None = None) -> Iterator[Sample]:
    chosen, split, rows = read_annotation(path, split, modality)
    rows = json_list(rows, "questions")
    questions: dict[str, list[dict[str, Any]]] = {}  # video id -> its questions, in file order
    for i, row in enumerate(progress(rows, len(rows), f"music-avqa {path.name}")):
        where = f"[{i}]"
        video_id = str(need(row, "video_id", (str, int), where))
        if row.get("question_deleted"):
            media.skip("question marked deleted")
            continue
        questions.setdefault(video_id, []).append(_qa(row, where))
    names = VideoNames(media.root)
    for video_id, qa in questions.items():
        file = video_file(media, names, video_id)
        if file is not None:
            yield video_sample(f"musicavqa-{video_id}", file, chosen, qa=qa, split=split, meta={"video_id": video_id})


def _qa(row: dict[str, Any], where: str) -> dict[str, Any]:
    answer = need(row, "anser" if "anser" in row or "answer" not in row else "answer", str, where)
    question = fill_template(need(row, "question_content", str, where), _json_list(row, "templ_values", where), where)
    qa: dict[str, Any] = {"question": question, "answer": answer.strip()}
    if "question_id" in row:
        qa["question_id"] = row["question_id"]
    if "type" in row:
        qa["type"] = _json_list(row, "type", where)
    return qa


def fill_template(question: str, values: list[str], where: str = "question") -> str:
    """`question` with its <...> slots replaced by `values` in order. Extra values are left
    unused, as the benchmark's own loader leaves them; too few is an error."""
    slots = SLOT.findall(question)
    if len(values) < len(slots):
        raise ValueError(
            f"{where}: {question!r} has {len(slots)} <...> slot(s) but templ_values only {len(values)} value(s)"
        )
    fills = iter(values)
    return SLOT.sub(lambda _: next(fills), question).strip()


def _json_list(row: dict[str, Any], key: str, where: str) -> list[str]:
    """A field published as JSON text of a list ("[\"piano\"]"); an actual list is taken too."""
    value = row.get(key, [])
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}.{key}: not JSON text of a list ({err.msg}): {value!r:.80}") from err
    if not isinstance(value, list):
        raise ValueError(f"{where}.{key}: expected a list, got {type(value).__name__}")
    return [str(v) for v in value]
