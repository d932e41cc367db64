"""throughput/samples_per_s and throughput/tokens_per_s from one trained batch to the next
(data loading included). Lightning's ThroughputMonitor logs under other names and only
after a window of batches; these names are the ones `onellm plot` and earlier runs use."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class Throughput(L.Callback):
    def __init__(self) -> None:
        self._last: float | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if "inputs" not in batch:
            return
        now = time.perf_counter()
        if self._last is not None:
            elapsed, size = now - self._last, len(batch["ids"])
            pl_module.log("throughput/samples_per_s", size / elapsed, batch_size=size)
            pl_module.log("throughput/tokens_per_s", float(batch["attention_mask"].sum()) / elapsed, batch_size=size)
        self._last = now
