"""OneLLMDataModule: a stage's manifests -> batches of one dataset modality (a single one, or a
joined one such as "video+audio"), chosen by the replay sampler."""

from __future__ import annotations

import bisect
import random
import re
import string
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from ..config import Prompting, resolve_model
from ..data.dataset import BadSample, ManifestDataset
from ..data.manifest import Sample, read_manifest, split_modality
from ..data.streamed import StreamedSamples, is_url, split_location
from ..modality import LoadContext
from ..model.modality_batch import ModalityBatch
from ..model.onellm import OneLLM
from ..processor import OneLLMProcessor
from ..registry import caption_prompt
from .replay import ReplayBatchSampler, ResumableLoader

# LLaVA-style conversations mark where the media goes with a tag such as <image> or
# <video>; tags that do not match the sample's inputs one to one are dropped.
_MEDIA_MARKER = re.compile(r"<[a-z][a-z0-9_-]*>")


@dataclass
class DatasetEntry:
    """One dataset in a stage: a `manifest` (.jsonl, held in memory) or a `streamed` one (a
    folder or URL written by `onellm data shards`, read item by item; its `<split>/` and
    `val/` sub-datasets are used). `weight` is its modality's share of the steps (the
    weights of a stage's entries are normalised together, so replayed modalities get theirs
    too). `modality` is the samples' modality: "video+audio" for samples with a video and an
    audio input."""

    modality: str
    manifest: str = ""
    streamed: str = ""
    weight: float = 1.0
    split: str = "train"
    name: str = ""

    def __post_init__(self) -> None:
        if bool(self.manifest) == bool(self.streamed):
            raise ValueError(
                f"dataset entry {self.name or self.modality}: give either manifest (a .jsonl file) or "
                "streamed (a folder or URL from `onellm data shards`), not both or neither"
            )


class SeededSamples(Dataset):
    """Modality datasets concatenated; item (index, seed) loads under that seed, so training
    augmentation is a function of the sample and the step, whatever the worker or resume."""

    def __init__(self, parts: dict[str, Dataset]) -> None:
        self.parts = parts
        self.modalities = list(parts)
        # Where each modality's indices start: no per-sample table, whatever the data's size.
        self.starts = np.cumsum([0] + [len(ds) for ds in parts.values()]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        part = bisect.bisect_right(self.starts, index) - 1
        modality, local = self.modalities[part], index - self.starts[part]
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone, as fork_rng saves: torch.manual_seed also seeds every
            # accelerator backend, through a call that records a stack trace (a third of a
            # small image's loading time).
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            try:
                item = self.parts[modality][local]
                # A draw under the sample's seed picks its instruction in stage 4, reproducibly.
                return item if isinstance(item, BadSample) else (*item, random.random())
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)


class TextForSamples:
    """Collate: group the samples' inputs by modality (a ModalityBatch) and build the text
    side of each sample, one placeholder per input.

    task "caption": the caption follows the modality tokens directly (alignment stages);
    task "instruct": in the prompt template, one of the sample's caption request, its QA
    pairs packed as the turns of one conversation, or its whole conversation; every answer
    of the chosen one is trained, each after the turns before it."""

    def __init__(self, processor: OneLLMProcessor, task: str) -> None:
        if task not in ("caption", "instruct"):
            raise ValueError(f"task must be 'caption' or 'instruct', got {task!r}")
        self.processor, self.task = processor, task

    def _pieces(self, sample: Sample, pick: float) -> list[tuple[str, bool]]:
        modalities = sample.input_modalities()
        if self.task == "caption" and sample.caption:
            return [(self.processor.request(modalities, prompting=Prompting.BARE), False), (sample.caption, True)]
        # The caption request is one instruction among the others, so the tuned model still
        # captions in the prompt template.
        choices = []
        if sample.qa:
            # In an order drawn from `pick`: in the data's fixed order the first answer is always
            # of the first question's kind (a colour), and the model learns to answer that kind
            # to every question asked first without reading it (stage 4 of the quickstart
            # answered a colour to 123 of 123 image questions).
            pairs = [(q["question"], q["answer"]) for q in sample.qa]
            random.Random(pick).shuffle(pairs)
            choices.append(pairs)
        if sample.caption:
            choices.append([(caption_prompt(modalities), sample.caption)])
        turns = self._conversation(sample)
        if turns:
            choices.append(turns)
        if not choices:
            raise ValueError(f"sample {sample.id}: no caption, QA pair or conversation to train on")
        return self.processor.segments(choices[int(pick * len(choices))], modalities)

    def _conversation(self, sample: Sample) -> list[tuple[str, str]]:
        """(human, assistant) turns, in order. Media tags stay where the data put them when
        there is one per input; otherwise they leave the text and the processor puts the
        inputs before the first turn."""
        turns = [
            (asked["value"], answered["value"])
            for asked, answered in zip(sample.conversations[::2], sample.conversations[1::2])
        ]
        tagged = sum(len(self.processor.markers(q)) for q, _ in turns)
        if tagged != len(sample.input_modalities()):
            turns = [(_MEDIA_MARKER.sub("", q).strip(), a) for q, a in turns]
        return turns

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        bad = [it for it in items if isinstance(it, BadSample)]
        items = [it for it in items if not isinstance(it, BadSample)]
        if not items:
            return {"bad": bad}
        samples, tensors, picks = zip(*items)
        batch = self.processor(conversations=[self._pieces(s, p) for s, p in zip(samples, picks)])
        batch["inputs"] = ModalityBatch.of_samples(
            [list(zip(s.input_modalities(), xs)) for s, xs in zip(samples, tensors)]
        )
        names = sorted({s.modality for s in samples})
        batch["modality"] = names[0] if len(names) == 1 else "mixed"
        batch["ids"] = [s.id for s in samples]
        batch["bad"] = bad
        return batch


def _joined(
    order: list[str],
    held: dict[str, Dataset],
    streamed: dict[str, list[Dataset]],
    keep: Callable[[str], bool] = lambda m: True,
) -> dict[str, Dataset]:
    """Per modality, in the stage's order (the replay sampler's draws depend on it), its
    in-memory samples and its streamed datasets as one dataset."""
    parts = {m: ([held[m]] if m in held else []) + [ds for ds in streamed.get(m, []) if len(ds)] for m in order}
    return {m: ds[0] if len(ds) == 1 else ConcatDataset(ds) for m, ds in parts.items() if ds and keep(m)}


def _replay_shares(weights: dict[str, float], replayed: set[str], share: float) -> dict[str, float]:
    """Weights rescaled so the replayed modalities take `share` of the steps together."""
    old = {m: w for m, w in weights.items() if m in replayed}
    new = {m: w for m, w in weights.items() if m not in replayed}
    if not new:
        raise ValueError(
            f"data.replay is set but every modality of the stage ({', '.join(weights)}) was "
            "trained before: there is nothing new to give the other steps to"
        )
    if not old or share == 0:
        return {**{m: 0.0 for m in old}, **new}
    total_old, total_new = sum(old.values()), sum(new.values())
    return {
        **{m: share * w / total_old for m, w in old.items()},
        **{m: (1 - share) * w / total_new for m, w in new.items()},
    }


class OneLLMDataModule(L.LightningDataModule):
    """`datasets` name the stage's manifests ("$DATA_ROOT" in a path is replaced by
    `data_root`); validation uses each manifest's "val" split.

    `replay`: the share of steps for the modalities an earlier stage trained (those of the
    model's `init_from`), split among them by their weights; the new modalities share the
    rest. 0 trains without replay (the earlier modalities are still validated, so forgetting
    shows); None (default) uses the entries' weights as given.

    `model`: the stage's model, whose tokenizers' options read the samples and whose processor
    writes their text; `init_from`: the export it grew from (the CLI links both from the
    model's section).

    `shuffle_block`: shuffle runs of this many neighbouring samples together (runs in random
    order, samples shuffled within each) instead of all samples freely, so that streaming
    from an object store fetches each chunk once per pass: set it near a chunk's item count
    (`onellm data shards` prints it). None (default): a free shuffle."""

    def __init__(
        self,
        datasets: list[DatasetEntry],
        data_root: str = ".",
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        task: str = "caption",
        val_samples: int = 32,
        replay: float | None = None,
        shuffle_block: int | None = None,
        model: OneLLM | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        if not datasets:
            raise ValueError("a stage needs at least one entry in data.datasets")
        self.datasets = [d if isinstance(d, DatasetEntry) else DatasetEntry(**d) for d in datasets]
        self.data_root, self.batch_size, self.num_workers = data_root, batch_size, num_workers
        if replay is not None and not 0.0 <= replay < 1.0:
            raise ValueError(f"data.replay is a share of the steps, 0 <= replay < 1; got {replay}")
        self.seed, self.task, self.val_samples, self.replay = seed, task, val_samples, replay
        self.shuffle_block = shuffle_block
        self.model, self.init_from = model, init_from
        self.train_parts: dict[str, Dataset] = {}
        self.weights: dict[str, float] = {}
        self.val_parts: dict[str, Dataset] = {}

    @property
    def prompting(self) -> Prompting:
        """How the stage's samples are asked (TextForSamples): its export is asked so too."""
        return Prompting.BARE if self.task == "caption" else Prompting.TEMPLATE

    def manifest_path(self, entry: DatasetEntry) -> Path:
        return Path(self._located(entry.manifest))

    def _located(self, location: str) -> str:
        return string.Template(location).safe_substitute(DATA_ROOT=self.data_root)

    def _read_entry(self, entry: DatasetEntry) -> tuple[list[Sample], list[Sample]]:
        """A manifest entry's (training, validation) samples, checked."""
        samples = read_manifest(self.manifest_path(entry))
        wrong = [s.id for s in samples if s.modality != entry.modality]
        if wrong:
            raise ValueError(f"{self.manifest_path(entry)}: sample {wrong[0]} is not {entry.modality}")
        mute = [s.id for s in samples if not (s.caption or s.qa or len(s.conversations) >= 2)]
        if mute:
            raise ValueError(
                f"{self.manifest_path(entry)}: {len(mute)} sample(s), e.g. {mute[0]}, have no "
                "caption, QA pair or conversation to train on"
            )
        return [s for s in samples if s.split == entry.split], [s for s in samples if s.split == "val"]

    def _streamed_val(self, entry: DatasetEntry, contexts: dict) -> StreamedSamples | None:
        location = split_location(self._located(entry.streamed), "val")
        if not is_url(location) and not Path(location).is_dir():
            return None
        try:
            return StreamedSamples(location, contexts, entry.modality, limit=self.val_samples)
        except (FileNotFoundError, OSError, ValueError) as err:
            warnings.warn(f"{location}: no validation data for {entry.modality} ({err})", stacklevel=2)
            return None

    def setup(self, stage: str | None = None) -> None:
        model = self.model
        if model is None:
            raise ValueError("the data module needs the stage's model (OneLLMDataModule(..., model=module.model))")
        # Workers get the loaders' options and input shapes, not the tokenizers' weights.
        contexts = {m: LoadContext.of(t) for m, t in model.tokenizers.items()}
        train: dict[str, list[Sample]] = {}
        val: dict[str, list[Sample]] = {}
        streamed: dict[str, list[Dataset]] = {}
        streamed_val: dict[str, list[Dataset]] = {}
        for entry in self.datasets:
            lacking = [m for m in split_modality(entry.modality) if m not in model.tokenizers]
            if lacking:
                raise ValueError(
                    f"dataset {entry.name or entry.manifest or entry.streamed} is {entry.modality}; the "
                    f"model lacks {', '.join(lacking)} (it has {', '.join(model.modalities)})"
                )
            if entry.streamed:
                location = split_location(self._located(entry.streamed), entry.split)
                streamed.setdefault(entry.modality, []).append(
                    StreamedSamples(location, contexts, entry.modality, train=True)
                )
                held_out = self._streamed_val(entry, contexts)
                if held_out is not None:
                    streamed_val.setdefault(entry.modality, []).append(held_out)
            else:
                samples, held = self._read_entry(entry)
                train.setdefault(entry.modality, []).extend(samples)
                val.setdefault(entry.modality, []).extend(held)
            self.weights[entry.modality] = self.weights.get(entry.modality, 0.0) + entry.weight
        if self.replay is not None:
            replayed = set(resolve_model(self.init_from)[0].modalities) if self.init_from else set()
            self.weights = _replay_shares(self.weights, replayed, self.replay)
        order = list(dict.fromkeys(entry.modality for entry in self.datasets))
        self.train_parts = _joined(
            order,
            {m: ManifestDataset(s, contexts, train=True) for m, s in train.items() if s},
            streamed,
            keep=lambda m: self.weights.get(m, 0) > 0,
        )
        self.val_parts = _joined(
            order, {m: ManifestDataset(s[: self.val_samples], contexts) for m, s in val.items() if s}, streamed_val
        )
        self.processor = model.processor

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer.max_steps is None or trainer.max_steps < 0:
            raise ValueError("set trainer.max_steps: the replay sampler draws a fixed number of steps")
        sampler = ReplayBatchSampler(
            {m: len(ds) for m, ds in self.train_parts.items()},
            {m: self.weights[m] for m in self.train_parts},
            self.batch_size,
            # max_steps counts optimizer steps; each takes accumulate_grad_batches batches.
            steps=trainer.max_steps * trainer.accumulate_grad_batches,
            seed=self.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            block=self.shuffle_block,
        )
        return ResumableLoader(
            SeededSamples(self.train_parts),
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=TextForSamples(self.processor, self.task),
            position=lambda: trainer.fit_loop.epoch_loop.batch_progress.total.ready,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_parts:
            return []
        batches, start = [], 0
        for ds in self.val_parts.values():
            ids = list(range(start, start + len(ds)))
            start += len(ds)
            batches += [[(i, 0) for i in ids[k : k + self.batch_size]] for k in range(0, len(ids), self.batch_size)]
        return DataLoader(
            SeededSamples(self.val_parts),
            batch_sampler=batches,
            num_workers=self.num_workers,
            collate_fn=TextForSamples(self.processor, self.task),
        )
