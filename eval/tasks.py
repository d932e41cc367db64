"""Evaluation tasks: a task is data (a reader of the benchmark's annotation file or of a
manifest), a prompt, generation settings and a metric kind. Tasks are looked up by name;
the synthetic-world tasks exist for every registered modality, plugins included, and more
tasks can come from the `onellm.eval_tasks` entry point (an EvalTask or a list of them)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from onellm.registry import get_modality, list_modalities

from . import formats
from .items import EvalItem

CAPTION, QA = "caption", "qa"
# OneLLM's video-QA prompt (its MSVD evaluation); the synthetic QA tasks use it too.
QA_PROMPT = "{question}\nAnswer the question using a single word or phrase."
DEFAULT_MAX_NEW_TOKENS = {CAPTION: 40, QA: 10}
ENTRY_POINT_GROUP = "onellm.eval_tasks"
SYNTH_ALL = "synth-all"


@dataclass(frozen=True)
class EvalTask:
    name: str
    modality: str
    kind: str  # CAPTION or QA: which metrics score it
    read: Callable[[Path], list[EvalItem]]  # data root -> items
    prompt: str | None = None  # caption: the question (default: the modality's); QA: a {question} template
    max_new_tokens: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (CAPTION, QA):
            raise ValueError(f"task {self.name}: kind must be {CAPTION!r} or {QA!r}, got {self.kind!r}")

    def items(self, data_root: Path | str) -> list[EvalItem]:
        items = self.read(Path(data_root).expanduser())
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"task {self.name}: sample ids are not unique in {data_root}")
        return items

    def question(self, item: EvalItem) -> str:
        if self.kind == QA:
            return (self.prompt or QA_PROMPT).format(question=item.question)
        return self.prompt or get_modality(self.modality).caption_prompt()

    def generation_length(self) -> int:
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[self.kind]


_BENCHMARKS = [
    EvalTask("coco-karpathy-test", "image", CAPTION, formats.read_coco_karpathy,
             description="COCO captions, Karpathy test split (5000 images)"),
    EvalTask("clotho-caption", "audio", CAPTION, formats.read_clotho,
             description="Clotho v2 audio captions, evaluation split"),
    EvalTask("msvd-qa", "video", QA, formats.read_msvd_qa, description="MSVD-QA open-ended video QA"),
    EvalTask("pointllm-caption", "point", CAPTION, formats.read_pointllm,
             description="PointLLM Objaverse brief descriptions (200 objects)"),
    EvalTask("ego4d-imu-caption", "imu", CAPTION,
             partial(formats.read_caption_json, names=["imu_caption_test.json", "imu_2000_cococap.json"],
                     modality="imu", folder="imu"),
             description="Ego4D IMU windows with narration captions"),
    EvalTask("nsd-fmri-caption", "fmri", CAPTION,
             partial(formats.read_caption_json, names=["fmri_caption_test.json", "fmri_eval_cococap.json"],
                     modality="fmri", folder="fmri"),
             description="NSD subject-1 fMRI with COCO captions of the seen images"),
]
_registered: dict[str, EvalTask] = {}
_discovered = False


def synth_tasks() -> list[EvalTask]:
    """synth-caption-<m> and synth-qa-<m> for every registered modality."""
    return [
        # The question as stage 4 trains it; the public QA tasks keep OneLLM's suffix.
        EvalTask(f"synth-{kind}-{m}", m, kind, partial(formats.read_synth, modality=m, kind=kind),
                 prompt="{question}" if kind == QA else None,
                 description=f"synthetic world, {m} {'captions' if kind == CAPTION else 'questions'} (test split)")
        for m in list_modalities() for kind in (CAPTION, QA)
    ]


def register_task(task: EvalTask, replace: bool = False) -> None:
    _discover()
    if task.name in _all() and not replace:
        raise ValueError(f"eval task {task.name!r} already exists")
    _registered[task.name] = task


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    if os.environ.get("ONELLM_DISABLE_PLUGIN_AUTOLOAD"):
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found = ep.load()
        for task in found if isinstance(found, (list, tuple)) else [found]:
            if not isinstance(task, EvalTask):
                raise TypeError(f"entry point {ep.value} gives a {type(task).__name__}, not an EvalTask")
            _registered[task.name] = task


def _all() -> dict[str, EvalTask]:
    _discover()
    return {t.name: t for t in [*_BENCHMARKS, *synth_tasks(), *_registered.values()]}


def list_tasks() -> list[EvalTask]:
    return list(_all().values())


def get_task(name: str) -> EvalTask:
    tasks = _all()
    if name not in tasks:
        raise KeyError(f"unknown eval task {name!r}; `onellm eval --list` shows them")
    return tasks[name]


def resolve_tasks(names: str | list[str]) -> list[EvalTask]:
    """Comma-separated names; `synth-all` expands to every synthetic task."""
    wanted = names.split(",") if isinstance(names, str) else list(names)
    tasks: list[EvalTask] = []
    for name in (n.strip() for n in wanted if n.strip()):
        for task in synth_tasks() if name == SYNTH_ALL else [get_task(name)]:
            if task.name not in {t.name for t in tasks}:
                tasks.append(task)
    if not tasks:
        raise ValueError("no eval task named")
    return tasks
