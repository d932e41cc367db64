"""Evaluation tasks: a task is data (a reader of the benchmark's annotation file or of a
manifest), a prompt, generation settings and a metric kind. Tasks are looked up by name;
the synthetic-world tasks exist for every registered modality, plugins included, and more
tasks can come from the `onellm.eval_tasks` entry point (an EvalTask or a list of them).
Any manifest becomes tasks of its own through `manifest_tasks` (`onellm eval --manifest`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from onellm.data.manifest import joined_modality, split_modality
from onellm.registry import Registry, caption_prompt, list_modalities

from . import formats
from .items import EvalItem, only_inputs

CAPTION, QA = "caption", "qa"
# OneLLM's video-QA prompt (its MSVD evaluation), for the public QA tasks.
QA_PROMPT = "{question}\nAnswer the question using a single word or phrase."
# The question alone, as stage 4 trains on a manifest's qa pairs: the synthetic-world and
# --manifest tasks read manifests, so they ask it that way.
MANIFEST_QA_PROMPT = "{question}"
DEFAULT_MAX_NEW_TOKENS = {CAPTION: 40, QA: 10}
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
    data: Path | None = None  # a file the task always reads (a manifest task's); None: the run's data root
    # CAPTION: a QA task whose answers are sentences, scored with the caption metrics (AVSD's
    # dialog answers, as its papers report them); None: the metrics of its kind.
    metrics: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (CAPTION, QA) or self.metrics not in (None, CAPTION, QA):
            raise ValueError(
                f"task {self.name}: kind and metrics must be {CAPTION!r} or {QA!r}, "
                f"got {self.kind!r} and {self.metrics!r}"
            )

    @property
    def scored_as(self) -> str:
        """CAPTION or QA: which metrics score the predictions."""
        return self.metrics or self.kind

    def source(self, data_root: Path | str | None) -> Path:
        """What `read` is given: the task's own file, else the run's data root."""
        root = self.data or data_root
        if root is None:
            raise ValueError(f"task {self.name} reads its files under --data-root; none was given")
        return Path(root).expanduser()

    def items(self, data_root: Path | str | None = None) -> list[EvalItem]:
        source = self.source(data_root)
        items = self.read(source)
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"task {self.name}: sample ids are not unique in {source}")
        return items

    def question(self, item: EvalItem) -> str:
        if self.kind == QA:
            return (self.prompt or QA_PROMPT).format(question=item.question)
        return self.prompt or caption_prompt(split_modality(self.modality))

    def generation_length(self) -> int:
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[self.kind]


_BENCHMARKS = [
    EvalTask(
        "coco-karpathy-test",
        "image",
        CAPTION,
        formats.read_coco_karpathy,
        description="COCO captions, Karpathy test split (5000 images)",
    ),
    EvalTask(
        "clotho-caption",
        "audio",
        CAPTION,
        formats.read_clotho,
        description="Clotho v2 audio captions, evaluation split",
    ),
    EvalTask("msvd-qa", "video", QA, formats.read_msvd_qa, description="MSVD-QA open-ended video QA"),
    EvalTask(
        "pointllm-caption",
        "point",
        CAPTION,
        formats.read_pointllm,
        description="PointLLM Objaverse brief descriptions (200 objects)",
    ),
    EvalTask(
        "ego4d-imu-caption",
        "imu",
        CAPTION,
        partial(
            formats.read_caption_json,
            names=["imu_caption_test.json", "imu_2000_cococap.json"],
            modality="imu",
            folder="imu",
        ),
        description="Ego4D IMU windows with narration captions",
    ),
    EvalTask(
        "nsd-fmri-caption",
        "fmri",
        CAPTION,
        partial(
            formats.read_caption_json,
            names=["fmri_caption_test.json", "fmri_eval_cococap.json"],
            modality="fmri",
            folder="fmri",
        ),
        description="NSD subject-1 fMRI with COCO captions of the seen images",
    ),
    EvalTask(
        "music-avqa-test",
        "video+audio",
        QA,
        formats.read_music_avqa,
        description="MUSIC-AVQA test questions over a video and its soundtrack (accuracy)",
    ),
    # Dialog answers are sentences, not words: asked as the question alone, with room for one,
    # and scored as captions (BLEU, METEOR, ROUGE-L, CIDEr), as the AVSD papers report.
    EvalTask(
        "avsd-test",
        "video+audio",
        QA,
        formats.read_avsd,
        prompt=MANIFEST_QA_PROMPT,
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS[CAPTION],
        metrics=CAPTION,
        description="AVSD (DSTC7) test dialogs, one item per turn, asked without the dialog history",
    ),
    EvalTask(
        "valor32k-test",
        "video+audio",
        CAPTION,
        formats.read_valor,
        description="VALOR-32K audio-visual captions, test split",
    ),
]


def _plugin_tasks(name: str, found: Any) -> list[tuple[str, EvalTask]]:
    """An `onellm.eval_tasks` entry point gives an EvalTask or a list of them."""
    tasks = found if isinstance(found, (list, tuple)) else [found]
    for task in tasks:
        if not isinstance(task, EvalTask):
            raise TypeError(f"entry point {name!r} gives a {type(task).__name__}, not an EvalTask")
    return [(task.name, task) for task in tasks]


# Tasks from plugins and register_task; the benchmarks and synthetic tasks are built in.
TASKS: Registry[EvalTask] = Registry("onellm.eval_tasks", "eval task", _plugin_tasks)


def synth_tasks() -> list[EvalTask]:
    """synth-caption-<m> and synth-qa-<m> for every registered modality."""
    return [
        EvalTask(
            f"synth-{kind}-{m}",
            m,
            kind,
            partial(formats.read_synth, modality=m, kind=kind),
            prompt=MANIFEST_QA_PROMPT if kind == QA else None,
            description=f"synthetic world, {m} {'captions' if kind == CAPTION else 'questions'} (test split)",
        )
        for m in list_modalities()
        for kind in (CAPTION, QA)
    ]


def manifest_tasks(path: Path, modality: str | None = None, split: str = "test") -> list[EvalTask]:
    """manifest-caption-<stem> when the split's samples have captions, manifest-qa-<stem> when
    they have qa pairs; scored as the synthetic tasks are (the same readers and prompts)."""
    path = Path(path).expanduser()
    samples = formats.split_samples(path, split)
    modalities = sorted({s.modality for s in samples})
    if modality is None and len(modalities) > 1:
        raise ValueError(
            f"{path}: the {split} split mixes modalities {', '.join(modalities)}; choose one with --modality"
        )
    modality = modality or modalities[0]
    chosen = [s for s in samples if s.modality == modality]
    if not chosen:
        raise ValueError(f"{path}: no {modality} samples in the {split} split (it has {', '.join(modalities)})")
    kinds = [k for k, found in ((CAPTION, any(s.caption for s in chosen)), (QA, any(s.qa for s in chosen))) if found]
    if not kinds:
        raise ValueError(f"{path}: the {split} split's {modality} samples have neither a caption nor qa pairs")
    return [
        EvalTask(
            f"manifest-{kind}-{path.stem}",
            modality,
            kind,
            partial(formats.read_manifest_items, modality=modality, kind=kind, split=split),
            prompt=MANIFEST_QA_PROMPT if kind == QA else None,
            data=path,
            description=f"{path}, {modality} {'captions' if kind == CAPTION else 'questions'} ({split} split)",
        )
        for kind in kinds
    ]


def with_inputs(task: EvalTask, modalities: list[str]) -> EvalTask:
    """`task` asked with only the inputs of `modalities` (the rest dropped from every item and
    prompt), named <task>@<kept inputs>: how much each stream of a multi-input task carries."""
    have = split_modality(task.modality)
    unknown = [m for m in modalities if m not in have]
    if unknown or not modalities:
        raise ValueError(f"task {task.name} has {task.modality} inputs; cannot keep {', '.join(unknown) or 'none'}")
    kept = [m for m in have if m in modalities]
    return dataclasses.replace(
        task,
        name=f"{task.name}@{joined_modality(kept)}",
        modality=joined_modality(kept),
        read=partial(_read_only, task.read, kept),
        description=f"{task.description}, {' and '.join(kept)} only",
    )


def _read_only(read: Callable[[Path], list[EvalItem]], modalities: list[str], source: Path) -> list[EvalItem]:
    return [only_inputs(item, modalities) for item in read(source)]


def register_task(task: EvalTask, replace: bool = False) -> None:
    if task.name in _all() and not replace:
        raise ValueError(f"eval task {task.name!r} already exists")
    TASKS.register(task.name, task, replace=True)


def _all() -> dict[str, EvalTask]:
    return {t.name: t for t in [*_BENCHMARKS, *synth_tasks(), *TASKS.items().values()]}


def list_tasks() -> list[EvalTask]:
    return list(_all().values())


def get_task(name: str) -> EvalTask:
    tasks = _all()
    if name not in tasks:
        failed = TASKS.failures().get(name)  # by entry-point name
        if failed:
            raise RuntimeError(f"eval task plugin {name!r} is installed but failed to load: {failed}")
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
