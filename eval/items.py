"""One evaluation item: a manifest `Sample` (onellm/data/manifest.py) asked one thing, so a
benchmark item and a manifest row are the same record.

A caption item is scored against meta["references"], where the dataset converters put every
caption of a sample, else against its caption; a QA item holds exactly one qa pair
({question, answer, choices?}). EvalItem adds no fields, only these views of them."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from onellm.data.manifest import Sample, joined_modality


class EvalItem(Sample):
    @classmethod
    def of(cls, sample: Sample, **changes: Any) -> EvalItem:
        """`sample` as an item, with `changes` to its fields."""
        return cls(**{**{f.name: getattr(sample, f.name) for f in fields(Sample)}, **changes})

    @property
    def references(self) -> list[str]:
        if self.qa:
            return [str(self.qa[0]["answer"])]
        return list(self.meta.get("references") or ([self.caption] if self.caption else []))

    @property
    def question(self) -> str | None:
        """None for a caption item: the task asks its caption prompt."""
        return self.qa[0]["question"] if self.qa else None

    @property
    def choices(self) -> list[str] | None:
        """Multiple choice: the options, in letter order."""
        return self.qa[0].get("choices") if self.qa else None


def only_inputs(item: EvalItem, modalities: list[str]) -> EvalItem:
    """`item` with only its inputs of `modalities`; one left makes it a single-input item."""
    if not item.inputs:
        if item.modality not in modalities:
            raise ValueError(f"item {item.id} has only a {item.modality} input")
        return item
    parts = [i for i in item.inputs if i["modality"] in modalities]
    if not parts:
        raise ValueError(f"item {item.id} has no {' or '.join(modalities)} input")
    if len(parts) == 1:
        return EvalItem.of(
            item,
            modality=parts[0]["modality"],
            files=list(parts[0]["files"]),
            inputs=[],
            meta={**item.meta, **parts[0].get("meta", {})},
        )
    files = list(dict.fromkeys(f for p in parts for f in p["files"]))
    return EvalItem.of(item, modality=joined_modality(p["modality"] for p in parts), files=files, inputs=parts)


def caption_item(
    id: str, modality: str, files: list[Path], references: list[str], meta: dict[str, Any] | None = None
) -> EvalItem:
    """files[0] is the modality's own file, the rest its companions; other `meta` reaches the loader."""
    return EvalItem(
        id,
        modality,
        [str(f) for f in files],
        caption=references[0] if references else None,
        split="test",
        meta={**(meta or {}), "references": list(references)},
    )


def qa_item(
    id: str,
    modality: str,
    files: list[Path],
    question: str,
    answer: str,
    choices: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> EvalItem:
    qa = {"question": question, "answer": answer, **({"choices": choices} if choices is not None else {})}
    return EvalItem(id, modality, [str(f) for f in files], qa=[qa], split="test", meta=dict(meta or {}))
