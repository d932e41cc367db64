"""The modality inputs of a batch of prompts, whatever each sample carries: one input, several
of different modalities, or none (text only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass  # not frozen: Lightning's batch transfer rebuilds dataclasses
class ModalityBatch:
    """`tensors`: per modality, its inputs stacked [N_m, *input_shape]. `order`: for each
    placeholder run of the batch's prompts in reading order (sample by sample, left to right
    within a sample), the (modality, row of tensors[modality]) that fills it.

    Each modality goes through its tokenizer, the shared encoder and the UPM once per batch,
    however its inputs are spread over the samples."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    order: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def single(cls, modality: str, inputs: torch.Tensor) -> ModalityBatch:
        """One input of `modality` per sample."""
        return cls({modality: inputs}, [(modality, i) for i in range(inputs.shape[0])])

    @classmethod
    def of_samples(cls, per_sample: Sequence[Sequence[tuple[str, torch.Tensor]]]) -> ModalityBatch:
        """From each sample's (modality, input) pairs in prompt order."""
        rows: dict[str, list[torch.Tensor]] = {}
        order = []
        for inputs in per_sample:
            for modality, x in inputs:
                order.append((modality, len(rows.setdefault(modality, []))))
                rows[modality].append(x)
        return cls({m: torch.stack(xs) for m, xs in rows.items()}, order)

    def __len__(self) -> int:
        return len(self.order)

    def to(self, device: torch.device | str) -> ModalityBatch:
        return ModalityBatch({m: x.to(device) for m, x in self.tensors.items()}, list(self.order))

    def gather(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-modality token runs [N_m, L, D] -> [len(order), L, D] in placeholder order, by
        one index into their concatenation (no copy when a single modality is in order)."""
        names = list(tokens)
        if (
            len(names) == 1
            and all(m == names[0] and i == n for n, (m, i) in enumerate(self.order))
            and tokens[names[0]].shape[0] == len(self.order)
        ):
            return tokens[names[0]]
        offsets, start = {}, 0
        for m in names:
            offsets[m], start = start, start + tokens[m].shape[0]
        device = tokens[names[0]].device
        index = torch.tensor([offsets[m] + i for m, i in self.order], device=device)
        return torch.cat([tokens[m] for m in names]).index_select(0, index)
