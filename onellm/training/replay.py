"""Which modality each step trains on, and which samples: deterministic, resumable, and
the same modality on every data-parallel rank at the same step."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


_MASK64 = (1 << 64) - 1


class Shuffle:
    """A seeded permutation of range(n) computed one position at a time, in constant memory
    (a table of n indices would be 8 GB per modality at LAION scale): a four-round Feistel
    network over the smallest even-bit domain holding n, whose outputs past n are walked on
    (at most four times the domain of n, so under four rounds of walking on average)."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError(f"nothing to shuffle: {n} items")
        bits = max(2, (n - 1).bit_length())
        self.n, self.half = n, (bits + bits % 2) // 2
        self.keys = [_seed(seed, "round", r) for r in range(4)]

    def _round(self, x: int, key: int) -> int:
        # splitmix64's finaliser: every input bit reaches every output bit.
        z = ((x + key) * 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (z ^ (z >> 31)) & ((1 << self.half) - 1)

    def _encrypt(self, x: int) -> int:
        left, right = x >> self.half, x & ((1 << self.half) - 1)
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __getitem__(self, position: int) -> int:
        x = self._encrypt(position)
        while x >= self.n:
            x = self._encrypt(x)
        return x


class BlockShuffle:
    """A seeded permutation of range(n) that keeps neighbours together: blocks of `block`
    consecutive indices in shuffled order, each block's indices shuffled within it (a short
    last block comes last). Reading a streamed dataset from an object store in this order
    fetches each chunk once per pass instead of once per sample."""

    def __init__(self, n: int, seed: int, block: int) -> None:
        if block < 1:
            raise ValueError(f"block must be at least 1, got {block}")
        self.block, self.seed = block, seed
        self.full = n // block
        self.blocks = Shuffle(self.full, _seed(seed, "blocks")) if self.full else None
        self.tail = Shuffle(n - self.full * block, _seed(seed, "tail")) if n % block else None
        self._within: tuple[int, Shuffle] | None = None

    def __getitem__(self, position: int) -> int:
        start = self.full * self.block
        if position >= start:
            return start + self.tail[position - start]
        which = self.blocks[position // self.block]
        if self._within is None or self._within[0] != which:
            self._within = (which, Shuffle(self.block, _seed(self.seed, "block", which)))
        return which * self.block + self._within[1][position % self.block]


class ReplayBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, per step, one batch of one modality as (global index, sample seed) pairs.

    `sizes[m]` is the number of samples of modality m; global indices run over the
    modalities in the order given (as in a ConcatDataset). The modality of step s is a
    function of (seed, s) alone, so every rank agrees and a resumed run (start_step = the
    batches already trained) continues exactly where the interrupted one stopped. Within a
    modality, samples follow a seeded permutation per pass (a `Shuffle`: memory does not
    grow with the dataset; with `block`, a `BlockShuffle` that keeps runs of `block`
    neighbouring samples together); rank r takes every world-th sample of each step's slice.
    The per-sample seed drives training augmentation.
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
        block: int | None = None,
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
        self.start_step, self.rank, self.world_size, self.block = start_step, rank, world_size, block
        self._orders: dict[str, tuple[int, Shuffle | BlockShuffle]] = {}

    def __len__(self) -> int:
        # The whole run, wherever iteration starts: Lightning ends the epoch when its batch
        # count (restored on resume) reaches this length, so the run stays one epoch.
        return self.steps

    def fingerprint(self) -> dict[str, Any]:
        """What fixes the stream of global batches (the rank split does not change it)."""
        return {
            "order": "feistel" if self.block is None else f"feistel-blocks-of-{self.block}",
            "seed": self.seed,
            "steps": self.steps,
            "global_batch": self.batch_size * self.world_size,
            "sizes": dict(self.sizes),
            "modalities": list(self.modalities),
            "probs": [round(float(p), 12) for p in self.probs],
        }

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
                batch.append((self.offsets[m] + order[pos], _seed(self.seed, m, step, k)))
            yield batch

    def _permutation(self, modality: str, epoch: int) -> Shuffle | BlockShuffle:
        cached = self._orders.get(modality)
        if cached is None or cached[0] != epoch:
            seed = _seed(self.seed, "order", modality, epoch)
            order = (
                Shuffle(self.sizes[modality], seed)
                if self.block is None
                else BlockShuffle(self.sizes[modality], seed, self.block)
            )
            cached = self._orders[modality] = (epoch, order)
        return cached[1]


class ResumableLoader(DataLoader):
    """A DataLoader over a ReplayBatchSampler whose position travels in Lightning checkpoints
    (Lightning saves `state_dict()` of loaders that have one and hands it back on resume),
    so a run killed at any step continues with the very batches it would have drawn.

    `position` returns the number of batches training has taken so far; the sampler's own
    count would run ahead of it by whatever the workers and Lightning have prefetched."""

    def __init__(self, *args: Any, position: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position

    def state_dict(self) -> dict[str, Any]:
        return {"step": int(self.position()), **self.batch_sampler.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        now = self.batch_sampler.fingerprint()
        # A key the checkpoint lacks was added since: its run drew batches the older way.
        changed = sorted(k for k in now if state.get(k) != now[k])
        if changed:
            warnings.warn(
                f"resuming with a different data stream ({', '.join(changed)} changed since the "
                "checkpoint): the remaining batches differ from the interrupted run's",
                stacklevel=2,
            )
        self.batch_sampler.start_step = int(state["step"])
