"""Where a run's own records (bad samples, rank records) go: beside its logs."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def run_log_dir(trainer: L.Trainer) -> Path:
    """trainer.log_dir is a broadcast under DDP: call this where every rank does (on train
    start), not later from one rank alone (one that met a bad file), which would wait forever."""
    return Path(trainer.log_dir or trainer.default_root_dir)
