"""Ending training the way clusters end jobs: SIGTERM or SIGINT stops at the end of the
step in progress with a checkpoint of that step, `max_time` stops with one too, and a run
started with `--ckpt_path last` says whether it resumes or starts fresh."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, Timer

from ..errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionCheckpoint(Checkpoint):
    """Saves `last.ckpt` in the ModelCheckpoint's directory when a signal or `max_time` ends
    training. It is a Checkpoint so that Lightning runs it after the Timer and the
    ModelCheckpoint of the same step: its save happens in the hook, and so in the loop state,
    of a periodic one, which is what makes resuming from it exact."""

    def __init__(self) -> None:
        self.resume_requested = False  # set by the CLI for `--ckpt_path last`
        self.stopped_on_time = False
        self.checkpoint_path: str | None = None
        self._signum = 0
        self._saved_step = -1
        self._last_step = -1
        self._stop: Interrupted | None = None

    def _model_checkpoint(self, trainer: L.Trainer) -> ModelCheckpoint:
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint):
                return cb
        raise ValueError("PreemptionCheckpoint saves beside a ModelCheckpoint, and the trainer has none")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only noted: the step in progress finishes and on_train_batch_end saves it. A second
        # signal (during that save, say) changes nothing, so the save completes.
        self._signum = self._signum or signum

    def _signal_on_any_rank(self, trainer: L.Trainer) -> int:
        """The signal any rank received (SIGTERM before SIGINT), agreed on by all: under DDP a
        signal to the launcher or to one rank stops every rank at the same step."""
        received = torch.tensor(self._signum, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(received, reduce_op="max"))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = Path(self._model_checkpoint(trainer).dirpath)
        if not trainer.is_global_zero:
            return
        # Left by a save that a kill -9 or a full disk interrupted; never a checkpoint to load.
        for tmp in directory.glob(".*.tmp"):
            if tmp.is_dir():  # a sharded (FSDP) save
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        if self.resume_requested and not trainer.ckpt_path:
            print(f"onellm fit: no checkpoint in {directory} yet: starting fresh", file=sys.stderr)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.resume_requested and trainer.ckpt_path and trainer.is_global_zero:
            print(f"onellm fit: resuming from {trainer.ckpt_path} at step {trainer.global_step}", file=sys.stderr)
        # Lightning's own SIGTERM handler (registered just before this hook) ends the run with
        # status 0 and no checkpoint; this one replaces it until Lightning's teardown restores
        # the handlers that were there before fit. SLURM's requeue signal is left to Lightning.
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                signal.signal(signum, self._on_signal)
        # A SIGTERM that Lightning's handler took since its registration: nothing trained yet.
        if trainer.received_sigterm:
            self._signum = self._signum or signal.SIGTERM
        signum = self._signal_on_any_rank(trainer)
        if signum:
            raise Interrupted(
                f"stopped by {signal.Signals(signum).name} before the first step",
                None,
                rank_zero=trainer.is_global_zero,
            )
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # With gradient accumulation, only a batch that ended in an optimizer step leaves no
        # half-accumulated gradients behind: a checkpoint there resumes exactly.
        stepped, self._last_step = trainer.global_step != self._last_step, trainer.global_step
        if not stepped:
            return
        signum = self._signal_on_any_rank(trainer)
        if signum:
            path = self._save(trainer)
            self._stop = Interrupted(
                f"stopped by {signal.Signals(signum).name} after step {trainer.global_step}",
                path,
                rank_zero=trainer.is_global_zero,
            )
        elif trainer.should_stop and self._out_of_time(trainer):
            self.checkpoint_path = self._save(trainer)
            self.stopped_on_time = True

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Stopping here rather than right after the save lets Lightning log the saved step's
        # metrics first (a signal at the last step just lets the run end as planned).
        if self._stop is not None:
            raise self._stop

    def _out_of_time(self, trainer: L.Trainer) -> bool:
        timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]
        remaining = timers[0].time_remaining() if timers else None
        # The Timer stopped every rank on rank 0's clock: decide on the same one.
        return bool(trainer.strategy.broadcast(remaining is not None and remaining <= 0))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._saved_step = trainer.global_step

    def _save(self, trainer: L.Trainer) -> str:
        """last.ckpt of this step (every rank calls it; rank 0 writes), unless the
        ModelCheckpoint has just saved this step."""
        cb = self._model_checkpoint(trainer)
        if self._saved_step == trainer.global_step and (cb.last_model_path or cb.best_model_path):
            return cb.last_model_path or cb.best_model_path
        path = os.path.join(cb.dirpath, (cb.CHECKPOINT_NAME_LAST or "last") + cb.FILE_EXTENSION)
        trainer.save_checkpoint(path, weights_only=cb.save_weights_only)
        return path
