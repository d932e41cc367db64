"""train/lr, the scheduler's rate at each step, by Lightning's LearningRateMonitor (the
module names its scheduler train/lr)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor


class LearningRate(LearningRateMonitor):
    """LearningRateMonitor, silent in a run without a logger (which it would refuse)."""

    def __init__(self) -> None:
        super().__init__(logging_interval="step")

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)
