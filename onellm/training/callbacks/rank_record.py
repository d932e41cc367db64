"""Per rank, rank<N>.json beside the logs: the modality of every step and a digest of the
trained weights, so that a data-parallel or resumed run can be audited (the same schedule
and the same weights on every rank, and as an uninterrupted run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L

from .. import sharding
from .log_dir import run_log_dir


class RankRecord(L.Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[int, str]] = []
        self._dir: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._dir = run_log_dir(trainer)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if "inputs" in batch:  # a batch without a readable sample trains nothing
            self.steps.append((trainer.global_step, batch["modality"]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, p in sorted(pl_module.model.named_parameters()):
            if p.requires_grad:
                digest.update(name.encode())
                digest.update(sharding.whole(p.detach()).float().cpu().numpy().tobytes())
        record = {"rank": trainer.global_rank, "steps": self.steps, "trained_weights_sha256": digest.hexdigest()}
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("onellm", {})["schedule"] = list(self.steps)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.steps = [tuple(s) for s in checkpoint.get("onellm", {}).get("schedule", [])]
