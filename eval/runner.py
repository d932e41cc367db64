"""`onellm eval`: the one place that puts model, task data and metrics together.

Per task, under <out>/<task>/: predictions.jsonl (appended batch by batch, so an interrupted
run resumes where it stopped), skipped.jsonl (unreadable samples and why), results.json (the
scores and the settings), run.json (the configuration hash resuming checks).
Across tasks: <out>/results.json and the table <out>/results.md."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from onellm.config import Prompting
from onellm.data.manifest import split_modality
from onellm.model.llm import generate_kwargs

from .items import EvalItem
from .labels import label_metrics
from .metrics import (
    CaptionScorer,
    majority_accuracy,
    multiple_choice_accuracy,
    qa_accuracy,
    skipped_metrics,
    spice_available,
)
from .report import write_summary
from .tasks import CAPTION, EvalTask

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig

    from onellm.data.manifest import SampleInput
    from onellm.model.onellm import OneLLM

# Task lengths count subword tokens; a byte-level LM (the tiny preset's) spends about three
# tokens on one of those, and would cut English captions short at the subword count.
BYTE_LEVEL_LENGTH_FACTOR = 3

PREDICTIONS, SKIPPED, RESULTS, RUN = "predictions.jsonl", "skipped.jsonl", "results.json", "run.json"


def prompting_for(model: OneLLM, task: EvalTask, prompting: Prompting | str | None = None) -> Prompting:
    """How the task's items are asked: `prompting`, else the model's config.prompting, which
    its last training stage set; QA always in the template, having no bare form."""
    chosen = Prompting(prompting or model.config.prompting)  # ValueError names a value it does not know
    return chosen if task.kind == CAPTION else Prompting.TEMPLATE


def item_prompt(model: OneLLM, task: EvalTask, item: EvalItem, prompting: Prompting) -> str:
    # A bare caption task asks nothing: the processor's BARE prompt is for a turn without a question.
    question = None if prompting is Prompting.BARE else task.question(item)
    return model.processor.request(item.input_modalities(), question, prompting=prompting)


def generation_kwargs(model: OneLLM, task: EvalTask, generation: GenerationConfig | None = None) -> dict[str, Any]:
    """generate()'s settings, over the model's generation_config: the benchmark's protocol,
    greedy at the task's length (in a byte-level LM's tokens), unless `generation` says otherwise."""
    length = task.generation_length()
    if model.config.llm.text_tokenizer == "bytes":
        length *= BYTE_LEVEL_LENGTH_FACTOR
    defaults = {"max_new_tokens": length, "do_sample": False}
    return defaults if generation is None else {**defaults, **generate_kwargs(generation)}


def _weight_files(model_name: str) -> list[tuple[str, int, int]]:
    """Size and modification time of a model directory's weight files: a model retrained
    into the same folder must not resume the old model's predictions."""
    folder = Path(model_name)
    if not folder.is_dir():
        return []
    return [
        (f.relative_to(folder).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
        for f in sorted(folder.rglob("*.safetensors"))
    ]


def config_hash(
    model_name: str, model: OneLLM, task: EvalTask, kwargs: dict[str, Any], prompting: Prompting, dtype: str
) -> str:
    """What determines the predictions: resuming under another hash would mix two runs."""
    facts = {
        "model": model_name,
        "weights": _weight_files(model_name),
        "config": model.config.to_dict(),
        "task": task.name,
        "kind": task.kind,
        "prompt": task.prompt,
        "generation": kwargs,
        "prompting": prompting.value,
        "dtype": dtype,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file; a torn last line (the run was killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    return rows


def _batches(items: list[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Loader:
    """Loads the next batch in a background thread while the model generates for this one,
    and keeps a batch's worth of inputs, since QA items of one sample share its files. An
    item's inputs come as (modality, tensor) pairs in prompt order."""

    def __init__(self, model: OneLLM, capacity: int) -> None:
        self.model, self.capacity = model, capacity
        self.cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.pool = ThreadPoolExecutor(max_workers=1)

    def batches(self, chunks: list[list[EvalItem]]) -> Iterator[tuple[list[EvalItem], list[list], list[dict]]]:
        pending = self.pool.submit(self.load, chunks[0]) if chunks else None
        for n in range(len(chunks)):
            loaded = pending.result()
            pending = self.pool.submit(self.load, chunks[n + 1]) if n + 1 < len(chunks) else None
            yield loaded

    def load(self, items: list[EvalItem]) -> tuple[list[EvalItem], list[list[tuple[str, torch.Tensor]]], list[dict]]:
        from onellm.errors import BadInputError

        good, inputs, bad = [], [], []
        for item in items:
            try:
                loaded = [(part.modality, self._input(part)) for part in item.input_list()]
            except (BadInputError, OSError, ValueError) as err:
                bad.append({"id": item.id, "reason": str(err)})
                continue
            good.append(item)
            inputs.append(loaded)
        return good, inputs, bad

    def _input(self, part: SampleInput) -> torch.Tensor:
        from onellm.inputs import load_input

        key = (part.modality, *map(str, part.paths), json.dumps(part.meta, sort_keys=True, default=str))
        if key not in self.cache:
            tokenizer = self.model.tokenizers[part.modality]
            self.cache[key] = load_input(part.paths, part.modality, tokenizer, train=False, meta=part.meta)
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        return self.cache[key]

    def __enter__(self) -> _Loader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def generate(
    model: OneLLM,
    task: EvalTask,
    items: list[EvalItem],
    inputs: list[list[tuple[str, torch.Tensor]]],
    prompting: Prompting,
    kwargs: dict[str, Any],
) -> list[str]:
    """One batch through the model's processor and generate(**kwargs); `inputs`: each item's
    (modality, input) pairs in prompt order."""
    return model.respond([item_prompt(model, task, item, prompting) for item in items], inputs, **kwargs)


def score(
    task: EvalTask,
    items: list[EvalItem],
    predictions: dict[str, str],
    scorer: CaptionScorer | None = None,
    split: list[EvalItem] | None = None,
) -> dict[str, float]:
    """The task's metrics over the items that have a prediction. `split`: all the task's
    items when `items` is the first part of them; it decides what the label classes are."""
    scored = [i for i in items if i.id in predictions]
    preds = {i.id: predictions[i.id] for i in scored}
    refs = {i.id: i.references for i in scored}
    if task.scored_as == CAPTION:
        labels = label_metrics(preds, refs, [i.references for i in split or items])
        if scorer is not None:
            return {**scorer(preds, refs), **labels}
        with CaptionScorer() as own:
            return {**own(preds, refs), **labels}
    metrics = qa_accuracy(preds, refs)
    if metrics:
        metrics["accuracy_majority"] = majority_accuracy(refs)
    for kind, ids in _question_types(scored).items():
        metrics[f"accuracy[{kind}]"] = qa_accuracy({k: preds[k] for k in ids}, {k: refs[k] for k in ids})["accuracy"]
    if scored and all(i.choices for i in scored):
        choices = {i.id: i.choices or [] for i in scored}
        metrics.update(multiple_choice_accuracy(preds, choices, {i.id: i.references[0] for i in scored}))
    return metrics


def _question_types(items: list[EvalItem]) -> dict[str, list[str]]:
    """Item ids by their qa entry's `type` (MUSIC-AVQA's ["Audio", "Counting"] counts by its
    first word, the stream it asks about); none when no item says."""
    groups: dict[str, list[str]] = {}
    for item in items:
        kind = item.qa[0].get("type") if item.qa else None
        if isinstance(kind, list):
            kind = kind[0] if kind else None
        if isinstance(kind, str) and kind:
            groups.setdefault(kind, []).append(item.id)
    return groups


def evaluate_task(
    model: OneLLM,
    task: EvalTask,
    data_root: Path | None,
    out_dir: Path,
    generation: GenerationConfig | None = None,
    prompting: Prompting | str | None = None,
    batch_size: int = 8,
    max_samples: int | None = None,
    model_name: str = "",
    dtype: str = "float32",
    scorer: CaptionScorer | None = None,
) -> dict[str, Any]:
    """Generate for every item not yet in <out>/<task>/predictions.jsonl, then score them all.
    `generation`: transformers' GenerationConfig (default: greedy, the task's length);
    `prompting`: caption tasks' Prompting (default: the model's config.prompting)."""
    prompting = prompting_for(model, task, prompting)
    kwargs = generation_kwargs(model, task, generation)
    if not task_fits(model, task):
        raise ValueError(f"task {task.name} needs a {task.modality} model; this one has {', '.join(model.modalities)}")
    started = time.perf_counter()
    split = task.items(data_root)
    items = split[:max_samples]
    folder = Path(out_dir) / task.name
    folder.mkdir(parents=True, exist_ok=True)
    digest = config_hash(model_name, model, task, kwargs, prompting, dtype)
    _check_resumable(folder, digest)

    done = {row["id"]: row["prediction"] for row in read_jsonl(folder / PREDICTIONS)}
    todo = [i for i in items if i.id not in done]
    skipped: list[dict] = []
    model.eval()
    with (
        _Loader(model, capacity=2 * batch_size) as loader,
        (folder / PREDICTIONS).open("a", encoding="utf-8") as out,
        tqdm(total=len(todo), desc=task.name, unit="sample", leave=False) as bar,
    ):
        for good, inputs, bad in loader.batches(list(_batches(todo, batch_size))):
            skipped += bad
            texts = generate(model, task, good, inputs, prompting, kwargs) if good else []
            for item, text in zip(good, texts):
                done[item.id] = text
                row = {"id": item.id, "prediction": text, "references": item.references}
                if item.question is not None:
                    row["question"] = item.question
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()  # what is on disk is what a resumed run skips
            bar.update(len(good) + len(bad))
    _write_jsonl(folder / SKIPPED, skipped)

    metrics = score(task, items, done, scorer, split)
    result = {
        "task": task.name,
        "modality": task.modality,
        "kind": task.kind,
        "model": model_name,
        "config_hash": digest,
        "metrics": metrics,
        "skipped_metrics": _skipped(task, scorer),
        "samples": sum(i.id in done for i in items),
        "skipped": len(skipped),
        "total": len(items),
        "generated_this_run": len(todo) - len(skipped),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "generation": kwargs,
        "prompting": prompting.value,
        "data_root": str(task.source(data_root)),
    }
    (folder / RESULTS).write_text(json.dumps(result, indent=2))
    return result


def task_fits(model: OneLLM, task: EvalTask) -> bool:
    """Whether the model has a tokenizer for every input modality of the task."""
    return all(m in model.tokenizers for m in split_modality(task.modality))


def _skipped(task: EvalTask, scorer: CaptionScorer | None) -> dict[str, str]:
    if task.scored_as != CAPTION:
        return {}
    return skipped_metrics(scorer.spice if scorer is not None else spice_available())


def _check_resumable(folder: Path, digest: str) -> None:
    run = folder / RUN
    if run.is_file() and (folder / PREDICTIONS).is_file():
        previous = json.loads(run.read_text()).get("config_hash")
        if previous != digest:
            raise ValueError(
                f"{folder}: holds predictions of another configuration (hash {previous}, now {digest}); "
                "choose another --out or delete that folder"
            )
    run.write_text(json.dumps({"config_hash": digest}))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def run_eval(
    model: OneLLM,
    tasks: list[EvalTask],
    data_root: Path | None,
    out_dir: Path,
    generation: GenerationConfig | None = None,
    scorer: CaptionScorer | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Every task in turn (sharing one METEOR process: `scorer`'s, which stays open, or a
    new one for this call), then the summary files. `options`: evaluate_task's (prompting,
    batch_size, max_samples, model_name, dtype)."""
    results = []
    with nullcontext(scorer) if scorer is not None else CaptionScorer() as scorer:
        if any(t.scored_as == CAPTION for t in tasks):
            scorer.warm_up()  # METEOR's Java start-up overlaps the generation
        for task in tasks:
            results.append(evaluate_task(model, task, data_root, out_dir, generation, scorer=scorer, **options))
    write_summary(Path(out_dir))
    return results


def score_predictions(
    task: EvalTask, data_root: Path | None, predictions_file: Path, out_dir: Path | None = None
) -> dict[str, Any]:
    """Score another system's predictions (JSON Lines rows {id, prediction}) on a task."""
    rows = read_jsonl(Path(predictions_file))
    if not rows:
        raise ValueError(f"{predictions_file}: no rows with an id and a prediction")
    bad = [r["id"] for r in rows if not isinstance(r.get("prediction"), str)]
    if bad:
        raise ValueError(f"{predictions_file}: rows without a string 'prediction', e.g. id {bad[0]}")
    items = task.items(data_root)
    known = {i.id for i in items}
    predictions = {str(r["id"]): r["prediction"] for r in rows}
    result = {
        "task": task.name,
        "modality": task.modality,
        "kind": task.kind,
        "predictions_file": str(predictions_file),
        "metrics": score(task, items, predictions),
        "skipped_metrics": _skipped(task, None),
        "samples": len(known & set(predictions)),
        "missing": len(known - set(predictions)),
        "unknown_ids": len(set(predictions) - known),
        "total": len(items),
        "data_root": str(task.source(data_root)),
    }
    if out_dir is not None:
        folder = Path(out_dir) / task.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULTS).write_text(json.dumps(result, indent=2))
        write_summary(Path(out_dir))
    return result
