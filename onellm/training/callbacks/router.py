"""router/<modality>/expert<e>: the mean router weight of each expert since the last log,
every `every_n_steps` steps (`onellm plot` draws them as a heat map)."""

from __future__ import annotations

from typing import Any

import lightning as L


class RouterStatistics(L.Callback):
    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps
        self._step = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step  # the step this batch trains, before the optimizer counts it

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if "inputs" not in batch or self._step % self.every_n_steps:
            return
        size = len(batch["ids"])
        for m, stats in pl_module.model.router_statistics(reset=True).items():
            for e, w in enumerate(stats["mean_weight"]):
                pl_module.log(f"router/{m}/expert{e}", w, batch_size=size)
