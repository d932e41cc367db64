"""A CSV log that survives a resume: Lightning's CSVLogger deletes metrics.csv whenever a
run starts in its folder, so resuming a killed run would lose every step before the kill."""

from __future__ import annotations

import csv
import os
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only


class _ContinuingWriter(ExperimentWriter):
    """Decides what to do with an existing metrics.csv at its first save, when the run has
    said whether it resumes: a fresh run replaces the file, a resumed one keeps the rows
    logged before its first step and drops those of steps it is about to train again."""

    def __init__(self, log_dir: str) -> None:
        self.resume_step: int | None = None
        self._decided = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        pass  # the decision waits for the first save

    def save(self) -> None:
        if not self._decided and self.metrics:
            self._decided = True
            self._continue_file()
        super().save()

    def _continue_file(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        if self.resume_step is None:
            os.remove(self.metrics_file_path)
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            kept = [row for row in reader if row.get("step") and int(row["step"]) < self.resume_step]
        self.metrics_keys = sorted(set(header))
        tmp = self.metrics_file_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.metrics_file_path)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv continues across a resume (`resume_from(step)` is called
    by ContinueLog when Lightning restores a checkpoint)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _ContinuingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def resume_from(self, step: int) -> None:
        self.experiment.resume_step = step


class ContinueLog(L.Callback):
    """Tells a ResumableCSVLogger where a resumed run continues, and writes every logger's
    rows out with each checkpoint: what a kill after a checkpoint must not lose."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path:  # resumed: the log continues from the restored step
            for logger in trainer.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.resume_from(trainer.global_step)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            logger.save()
