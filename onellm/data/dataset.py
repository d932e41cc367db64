"""ManifestDataset: manifest samples -> (sample, its inputs), each loaded by its modality's loader.

Workers get each modality's LoadContext (options, encoder config, input shape), never the
tokenizer modules and their weights. A sample whose files cannot be read becomes a
`BadSample` instead of stopping training; the collate function drops it and the training
module counts it and writes its reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import BadInputError
from ..inputs import load_input
from ..modality import LoadContext, ModalityTokenizer
from ..sources import FileSource
from .manifest import Sample
from .shards import materialized

Sources = Callable[[list[Path]], list[FileSource]]


@dataclass  # not frozen: Lightning's batch transfer rebuilds dataclasses
class BadSample:
    id: str
    reason: str  # the whole message, with the file
    problem: str = ""  # what was wrong, for counting by reason


class ManifestDataset(Dataset):
    def __init__(
        self, samples: list[Sample], tokenizers: dict[str, ModalityTokenizer | LoadContext], train: bool = False
    ) -> None:
        used = {m for s in samples for m in s.input_modalities()}
        missing = sorted(used - set(tokenizers))
        if missing:
            raise ValueError(f"samples of modality {missing}, which the model has no tokenizer for")
        self.samples = samples
        self.contexts = {m: LoadContext.of(t) for m, t in tokenizers.items() if m in used}
        self.train = train

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, sample: Sample, sources: Sources = materialized) -> list[torch.Tensor]:
        """The sample's inputs in prompt order (a video and its own soundtrack read one file
        twice, once by each loader); `sources` gives the loaders each input's files."""
        return [
            load_input(
                sources(part.paths), part.modality, self.contexts[part.modality], train=self.train, meta=part.meta
            )
            for part in sample.input_list()
        ]

    def __getitem__(self, index: int) -> tuple[Sample, list[torch.Tensor]] | BadSample:
        return self.loaded(self.samples[index])

    def loaded(self, sample: Sample, sources: Sources = materialized) -> tuple[Sample, list[torch.Tensor]] | BadSample:
        try:
            return sample, self.load(sample, sources)
        except BadInputError as err:
            return BadSample(sample.id, str(err), err.problem)
        except Exception as err:  # whatever else a file made fail (a shard member, say): one bad sample
            problem = f"{type(err).__name__} ({err})"  # counted by type
            return BadSample(sample.id, str(BadInputError(sample.paths()[0], problem, sample.modality)), problem)
