"""Unreadable samples: recorded with their reasons, listed in bad_samples.jsonl at the end,
and a stop when too many of the draws fail (a broken dataset should not train silently on
what is left). The collate marks them in `batch["bad"]`; the module skips a batch without
any readable sample."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L

from ...data.manifest import write_jsonl
from .log_dir import run_log_dir

# Fewer draws than this say nothing yet about the dataset's share of bad files.
MIN_DRAWS = 32


class TooManyBadSamples(RuntimeError):
    """Training stopped because too much of the data could not be read."""


class BadSamples(L.Callback):
    def __init__(self, max_fraction: float = 0.1) -> None:
        self.max_fraction = max_fraction
        self.samples: dict[str, str] = {}  # id -> why it could not be read
        self.reasons: Counter[str] = Counter()  # problem -> training draws that met it
        self.seen = 0
        self._dir: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._dir = run_log_dir(trainer)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        bad = batch.get("bad", [])
        self._record(bad)
        self.reasons.update(sample.problem.split(" (")[0] for sample in bad)
        self.seen += len(bad) + len(batch.get("ids", []))
        pl_module.log("data/bad_samples", float(len(self.samples)), batch_size=1)
        failed = sum(self.reasons.values())
        if self.seen >= MIN_DRAWS and failed > self.max_fraction * self.seen:
            reasons = "; ".join(f"{n} x {r}" for r, n in self.reasons.most_common(5))
            listed = self._write(trainer)
            raise TooManyBadSamples(
                f"{failed} of {self.seen} samples drawn were unreadable (more than "
                f"max_bad_fraction={self.max_fraction}): {reasons}; the files are listed in "
                f"{listed}: fix or remove them (onellm data check), or raise --model.max_bad_fraction"
            )

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._record(batch.get("bad", []))

    def _record(self, bad: list) -> None:
        for sample in bad:
            self.samples.setdefault(sample.id, sample.reason)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} x {r}" for r, n in self.reasons.most_common())
        return f"skipped {len(self.samples)} unreadable sample(s), drawn {sum(self.reasons.values())} times ({reasons})"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reasons and trainer.is_global_zero:
            print(f"epoch {trainer.current_epoch}: {self.summary()}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.samples:
            listed = self._write(trainer)
            if trainer.is_global_zero:
                print(f"{self.summary()}; each with its file in {listed}")

    def _write(self, trainer: L.Trainer) -> Path:
        # Under DDP each rank reads (and so finds broken) its own share of the samples.
        rank = trainer.global_rank
        path = self._dir / ("bad_samples.jsonl" if rank == 0 else f"bad_samples.rank{rank}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, ({"id": i, "reason": r} for i, r in sorted(self.samples.items())))
        return path

    # What a kill after a checkpoint must not lose, under the checkpoint's "onellm" key as before.
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("onellm", {}).update(
            bad_samples=dict(self.samples), bad_reasons=dict(self.reasons), samples_seen=self.seen
        )

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("onellm", {})
        self.samples = dict(saved.get("bad_samples", {}))
        self.reasons = Counter(saved.get("bad_reasons", {}))
        self.seen = int(saved.get("samples_seen", 0))
