"""`onellm data check`: does every sample's file load through its modality's loader, as
training will load it? Manifests and streamed datasets (`onellm data shards` folders) alike. Also counts per modality and split, and the problems training would
meet later: samples with nothing to train on, duplicate ids, a missing val split, a manifest
that mixes modalities (a training dataset entry reads one)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import resolve_model
from ..modality import LoadContext
from ..registry import get_modality
from .dataset import BadSample, ManifestDataset
from .manifest import SPLITS, Sample, read_manifest
from .streamed import StreamedSamples, decode_item, is_url, open_streamed, split_location

SHOWN = 10  # bad files named in the report; the rest are counted


@dataclass
class CheckReport:
    samples: list[Sample]
    checked: int = 0  # samples whose files were loaded (fewer than all with a limit)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (sample id, reason naming the file)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """Samples per modality and split, with how many have a caption, QA or conversation."""
        header = f"{'modality':<10}" + "".join(f"{c:>8}" for c in (*SPLITS, "caption", "qa", "conv", "bad"))
        bad_ids = {i for i, _ in self.bad}
        groups: dict[str, list[Sample]] = {}
        for s in self.samples:
            groups.setdefault(s.modality, []).append(s)
        rows = [header] + [_row(m, group, bad_ids) for m, group in sorted(groups.items())]
        if len(groups) > 1:
            rows.append(_row("all", self.samples, bad_ids))
        return "\n".join(rows)


def _row(name: str, samples: list[Sample], bad_ids: set[str]) -> str:
    splits = Counter(s.split for s in samples)
    counts = [splits[s] for s in SPLITS] + [
        sum(bool(s.caption) for s in samples),
        sum(bool(s.qa) for s in samples),
        sum(bool(s.conversations) for s in samples),
        sum(s.id in bad_ids for s in samples),
    ]
    return f"{name:<10}" + "".join(f"{n:>8}" for n in counts)


class _Verdicts(Dataset):
    """A sample's (id, reason) for not loading, None when it loads: the input itself stays in
    the worker, only the verdict crosses back."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, str] | None:
        item = self.dataset[index]
        return (item.id, item.reason) if isinstance(item, BadSample) else None


def model_contexts(model: str, modalities: set[str]) -> dict[str, LoadContext]:
    """What the loaders of a preset or a saved model need for these modalities (options and
    input shapes), without building the model or any weights; a modality the model lacks is
    left out."""
    config, _ = resolve_model(model)
    return {
        m: LoadContext.build(get_modality(m).tokenizer, config.encoder, config.modalities[m])
        for m in sorted(modalities & set(config.modalities))
    }


def check_manifests(
    manifests: list[Path | str], model: str = "tiny", limit: int | None = None, workers: int = 0
) -> CheckReport:
    """Load the files of every sample (the first `limit` of each manifest or streamed split,
    when given). A folder or URL is a streamed dataset: its splits' records are read, then
    their files loaded from the stream."""
    report = CheckReport([])
    to_load: list[Sample] = []
    streams: list[tuple[str, list[Sample]]] = []
    for path in manifests:
        if is_url(str(path)) or Path(path).is_dir():
            for location in _streamed_splits(str(path)):
                samples = _read_streamed(location, report)
                report.samples += samples
                streams.append((location, samples))
            continue
        samples = read_manifest(path)
        modalities = sorted({s.modality for s in samples})
        if len(modalities) > 1:
            report.notes.append(
                f"{path} holds {len(modalities)} modalities ({', '.join(modalities)}): a training "
                "dataset entry reads one; keep a manifest per modality"
            )
        report.samples += samples
        to_load += samples[:limit]
    every = to_load + [s for _, samples in streams for s in samples[:limit]]
    contexts = model_contexts(model, {m for s in every for m in s.input_modalities()})

    def loads(sample: Sample) -> bool:
        lacking = [m for m in sample.input_modalities() if m not in contexts]
        if lacking:
            report.bad.append(
                (sample.id, f"{sample.paths()[0]}: the model {model} has no {' or '.join(lacking)} modality")
            )
        return not lacking

    datasets: list[Dataset] = [ManifestDataset([s for s in to_load if loads(s)], contexts)]
    for location, samples in streams:
        verdicts = [loads(s) for s in samples[:limit]]  # a list, not all(...): every lacking sample is reported
        if samples and all(verdicts):
            datasets.append(StreamedSamples(location, contexts, samples[0].modality, limit=limit))
    for dataset in datasets:
        loader = DataLoader(_Verdicts(dataset), batch_size=None, num_workers=workers)
        for verdict in tqdm(loader, total=len(dataset), desc="checking", unit="sample", leave=False):
            if verdict is not None:
                report.bad.append(verdict)
    report.checked = len(every)
    report.notes += _notes(report.samples)
    return report


def _streamed_splits(location: str) -> list[str]:
    """A streamed split itself, or the splits of a folder `onellm data shards` wrote."""
    if is_url(location) or (Path(location) / "index.json").is_file():
        return [location]
    found = [split_location(location, split) for split in SPLITS if (Path(location) / split / "index.json").is_file()]
    if not found:
        raise FileNotFoundError(
            f"{location}: a folder, but no streamed dataset in it (no <split>/index.json); "
            "pass .jsonl manifests or a folder written by `onellm data shards`"
        )
    return found


def _read_streamed(location: str, report: CheckReport) -> list[Sample]:
    """Every record of a streamed split (their files are not read here); a malformed one is bad."""
    reader = open_streamed(location)
    samples = []
    for index in tqdm(range(len(reader)), desc=f"reading {location}", unit="sample", leave=False):
        where = f"{location}[{index}]"
        try:
            samples.append(decode_item(reader[index], location, where)[0])
        except ValueError as err:
            report.bad.append((where, f"{where}: {err}"))
    return samples


def _notes(samples: list[Sample]) -> list[str]:
    notes = []
    # Training refuses a manifest with such a sample (conversations: a question and a reply).
    mute = [s.id for s in samples if not (s.caption or s.qa or len(s.conversations) >= 2)]
    if mute:
        notes.append(
            f"{len(mute)} sample(s) have no caption, QA pair or conversation: nothing to train on "
            f"(first: {', '.join(mute[:3])})"
        )
    ids = Counter(s.id for s in samples)
    duplicates = [i for i, n in ids.items() if n > 1]
    if duplicates:
        notes.append(f"{len(duplicates)} id(s) used more than once (first: {', '.join(duplicates[:3])})")
    for modality in sorted({s.modality for s in samples}):
        splits = {s.split for s in samples if s.modality == modality}
        for split, effect in (
            ("train", "nothing to train on"),
            ("val", "validation will be skipped"),
            ("test", "nothing held out to evaluate on"),
        ):
            if split not in splits:
                notes.append(f"{modality}: no {split} split: {effect}")
    return notes
