"""One evaluation sample: the files the model sees, the question it is asked, the answers
it is scored against."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EvalItem:
    id: str
    modality: str
    paths: list[Path]  # paths[0] is the modality's own file, the rest its companions
    references: list[str]
    question: str | None = None  # None: the task's caption prompt
    choices: list[str] | None = None  # multiple choice: the options, in letter order
    meta: dict[str, Any] = field(default_factory=dict)
