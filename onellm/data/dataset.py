"""ManifestDataset: manifest samples -> (sample, model input), loaded by the modality's loader.

Workers get each modality's LoadContext (options, encoder config, input shape), never the
tokenizer modules and their weights. A sample whose files cannot be read becomes a
`BadSample` instead of stopping training; the collate function drops it and the training
module counts it and writes its reason."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..errors import BadInputError
from ..inputs import load_input
from ..modality import LoadContext, ModalityTokenizer
from .manifest import Sample
from .shards import materialized


@dataclass  # not frozen: Lightning's batch transfer rebuilds dataclasses
class BadSample:
    id: str
    reason: str  # the whole message, with the file
    problem: str = ""  # what was wrong, for counting by reason


class ManifestDataset(Dataset):
    def __init__(self, samples: list[Sample], tokenizers: dict[str, ModalityTokenizer | LoadContext],
                 train: bool = False) -> None:
        missing = sorted({s.modality for s in samples} - set(tokenizers))
        if missing:
            raise ValueError(f"samples of modality {missing}, which the model has no tokenizer for")
        self.samples = samples
        self.contexts = {m: LoadContext.of(t) for m, t in tokenizers.items() if m in {s.modality for s in samples}}
        self.train = train

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, sample: Sample) -> torch.Tensor:
        with materialized(sample.paths()) as paths:
            return load_input(paths, sample.modality, self.contexts[sample.modality], train=self.train,
                              meta=sample.meta)

    def __getitem__(self, index: int) -> tuple[Sample, torch.Tensor] | BadSample:
        sample = self.samples[index]
        try:
            return sample, self.load(sample)
        except BadInputError as err:
            return BadSample(sample.id, str(err), err.problem)
        except Exception as err:  # whatever else a file made fail (a shard member, say): one bad sample
            problem = f"{type(err).__name__} ({err})"  # counted by type
            return BadSample(sample.id, str(BadInputError(sample.paths()[0], problem, sample.modality)), problem)

