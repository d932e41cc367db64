"""ManifestDataset: manifest samples -> (sample, model input), loaded by the modality's loader.

A sample whose files cannot be read becomes a `BadSample` instead of stopping training;
the collate function drops it and the training module counts it and writes its reason."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import BadInputError
from ..modality import ModalityTokenizer
from ..registry import get_modality
from .manifest import Sample
from .shards import materialized


@dataclass  # not frozen: Lightning's batch transfer rebuilds dataclasses
class BadSample:
    id: str
    reason: str


class ManifestDataset(Dataset):
    def __init__(self, samples: list[Sample], tokenizers: dict[str, ModalityTokenizer], train: bool = False,
                 skip_bad: bool = True) -> None:
        missing = sorted({s.modality for s in samples} - set(tokenizers))
        if missing:
            raise ValueError(f"samples of modality {missing}, which the model has no tokenizer for")
        self.samples, self.tokenizers = samples, tokenizers
        self.train, self.skip_bad = train, skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, sample: Sample) -> torch.Tensor:
        spec = get_modality(sample.modality)
        tokenizer = self.tokenizers[sample.modality]
        with materialized(sample.paths()) as paths:
            return self._load_files(sample, spec, tokenizer, paths)

    def _load_files(self, sample: Sample, spec, tokenizer: ModalityTokenizer, paths: list[Path]) -> torch.Tensor:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BadInputError(missing[0], "no such file")
        if spec.load is None and _raw_tensor(paths[0], tokenizer.input_shape) is None:
            raise BadInputError(paths[0], f"{sample.modality} has no file loader; give a .npy of its input shape")
        x = _raw_tensor(paths[0], tokenizer.input_shape) if len(paths) == 1 else None
        if x is None:
            x = spec.load(paths, tokenizer, train=self.train, meta=sample.meta)
        if tuple(x.shape) != tuple(tokenizer.input_shape):
            raise BadInputError(paths[0], f"loader gave shape {list(x.shape)}, expected {list(tokenizer.input_shape)}")
        return x

    def __getitem__(self, index: int) -> tuple[Sample, torch.Tensor] | BadSample:
        sample = self.samples[index]
        try:
            return sample, self.load(sample)
        except (BadInputError, OSError, ValueError) as err:
            if not self.skip_bad:
                raise
            return BadSample(sample.id, str(err))


def _raw_tensor(path: Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """A .npy that already holds the model input (preprocessed data) skips the loader."""
    if path.suffix.lower() != ".npy":
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadInputError(path, f"not a readable .npy array ({err})") from err
    if tuple(array.shape) != tuple(shape):
        return None
    return torch.from_numpy(np.array(array, dtype=np.float32))
