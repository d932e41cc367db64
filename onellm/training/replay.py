"""Which modality each step trains on, and which samples: deterministic, resumable, and
the same modality on every data-parallel rank at the same step."""
from __future__ import annotations

import hashlib
from typing import Iterator

import torch
from torch.utils.data import Sampler


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class ReplayBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, per step, one batch of one modality as (global index, sample seed) pairs.

    `sizes[m]` is the number of samples of modality m; global indices run over the
    modalities in the order given (as in a ConcatDataset). The modality of step s is a
    function of (seed, s) alone, so every rank agrees and a resumed run (start_step = the
    restored global step) continues exactly where the interrupted one stopped. Within a
    modality, samples follow a seeded permutation per pass; rank r takes every world-th
    sample of each step's slice. The per-sample seed drives training augmentation.
    """

    def __init__(
        self,
        sizes: dict[str, int],
        weights: dict[str, float],
        batch_size: int,
        steps: int,
        seed: int = 0,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        missing = set(weights) - set(sizes)
        if missing:
            raise ValueError(f"weights given for modalities without data: {sorted(missing)}")
        self.modalities = [m for m in sizes if weights.get(m, 0) > 0]
        if not self.modalities:
            raise ValueError("no modality has a positive sampling weight and data")
        empty = [m for m in self.modalities if sizes[m] < batch_size * world_size]
        if empty:
            raise ValueError(f"fewer samples than one global batch ({batch_size * world_size}) for {empty}")
        offsets, total = {}, 0
        for m, n in sizes.items():
            offsets[m], total = total, total + n
        self.sizes, self.offsets = sizes, offsets
        self.probs = torch.tensor([weights[m] for m in self.modalities], dtype=torch.float64)
        self.probs /= self.probs.sum()
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self._orders: dict[str, tuple[int, torch.Tensor]] = {}

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def modality_at(self, step: int) -> str:
        g = torch.Generator().manual_seed(_seed(self.seed, "modality", step))
        return self.modalities[int(torch.multinomial(self.probs, 1, generator=g))]

    def schedule(self, steps: int) -> list[str]:
        return [self.modality_at(s) for s in range(steps)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        # Position of each modality's cursor at start_step: replay the (cheap) modality draws.
        cursor = {m: 0 for m in self.modalities}
        for step in range(self.start_step):
            cursor[self.modality_at(step)] += 1
        per_step = self.batch_size * self.world_size
        for step in range(self.start_step, self.steps):
            m = self.modality_at(step)
            n = self.sizes[m]
            first = cursor[m] * per_step
            cursor[m] += 1
            batch = []
            for k in range(first + self.rank, first + per_step, self.world_size):
                epoch, pos = divmod(k, n)
                # Passes over a modality wrap mid-batch cleanly: position k of pass `epoch`.
                order = self._permutation(m, epoch)
                batch.append((self.offsets[m] + int(order[pos]), _seed(self.seed, m, step, k)))
            yield batch

    def _permutation(self, modality: str, epoch: int) -> torch.Tensor:
        cached = self._orders.get(modality)
        if cached is None or cached[0] != epoch:
            g = torch.Generator().manual_seed(_seed(self.seed, "order", modality, epoch))
            cached = self._orders[modality] = (epoch, torch.randperm(self.sizes[modality], generator=g))
        return cached[1]
