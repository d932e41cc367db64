"""Room on disk: what a checkpoint and an export of the model take, what is free where they
go, and a warning at the start of training when they will not fit."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.distributed.tensor import DTensor


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint-like structure, each storage counted
    once, as torch.save writes tied weights once."""
    seen: set[int] = set()

    def walk(x: Any) -> int:
        if isinstance(x, DTensor):  # sharded (FSDP): the checkpoint holds it whole, over all ranks
            return x.numel() * x.element_size()
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            if storage.data_ptr() in seen:
                return 0
            seen.add(storage.data_ptr())
            return storage.nbytes()
        if isinstance(x, dict):
            return sum(walk(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x)
        return 0

    return walk(obj)


def _existing(directory: Path) -> Path:
    """The directory, or its nearest ancestor that exists: where it will be created."""
    directory = directory.absolute()
    while not directory.exists():
        directory = directory.parent
    return directory


def free_bytes(directory: str | os.PathLike) -> int:
    return shutil.disk_usage(_existing(Path(directory))).free


def format_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def newest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `directory` (temporary files of a save in progress
    are hidden `.*.tmp` files and do not count); a sharded one is a directory."""
    found = [p for p in Path(directory).glob("*.ckpt") if p.is_file() or (p / ".metadata").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _files_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def checkpoint_bytes(
    pl_module: L.LightningModule, optimizers: list[torch.optim.Optimizer], weights_only: bool = False
) -> int:
    """About the size of one checkpoint: the weights that train and (unless `weights_only`)
    the optimizer's state. OneLLMModule.on_save_checkpoint leaves frozen weights out (they
    come back from the preset or init_from), so they are not counted."""
    # Parameters and persistent buffers rather than state_dict(): under FSDP2 that reshards
    # the model on the one rank that asks, leaving the ranks' next collectives out of step.
    trained = [p for p in pl_module.parameters() if p.requires_grad]
    buffers = [
        b
        for m in pl_module.modules()
        for n, b in m.named_buffers(recurse=False)
        if n not in m._non_persistent_buffers_set
    ]
    total = tensor_bytes([*trained, *buffers])
    if weights_only:
        return total
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p)
                # Before the first step Adam has no state yet: it will hold two moments per parameter.
                total += tensor_bytes(state) if state else 2 * p.numel() * p.element_size()
    return total


class DiskSpaceCheck(Callback):
    """At the start of training, warns in one line when the checkpoints (as many as
    ModelCheckpoint keeps, plus the one being written) and the export will not fit in the
    free space of their directories."""

    def __init__(self, export_dir: str | None = None) -> None:
        self.export_dir = export_dir

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        # (what, directory, bytes to add there): files it will replace are already counted as used.
        needs: list[tuple[str, Path, int]] = []
        # Per folder (the resume and the best checkpoints share one): the files each callback
        # keeps plus the one it is writing, at their size (the best keeps weights only).
        kept: dict[str, list[tuple[int, int]]] = {}
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath:
                copies = max(cb.save_top_k, 1) + bool(cb.save_last) + 1
                kept.setdefault(cb.dirpath, []).append(
                    (copies, checkpoint_bytes(pl_module, trainer.optimizers, cb.save_weights_only))
                )
        for dirpath, files in kept.items():
            held = _files_bytes(list(Path(dirpath).glob("*.ckpt")))
            sizes = " + ".join(f"{copies} x {format_size(one)}" for copies, one in files)
            needs.append(
                (
                    f"checkpoints in {dirpath} ({sizes})",
                    Path(dirpath),
                    sum(copies * one for copies, one in files) - held,
                )
            )
        if self.export_dir:
            export = Path(self.export_dir)
            size = tensor_bytes(pl_module.state_dict())
            held = _files_bytes(list(export.rglob("*"))) if export.is_dir() else 0
            needs.append((f"the export in {export} ({format_size(size)})", export, size - held))
        by_disk: dict[int, list[tuple[str, Path, int]]] = {}
        for need in needs:
            by_disk.setdefault(os.stat(_existing(need[1])).st_dev, []).append(need)
        for group in by_disk.values():
            total, free = sum(n for _, _, n in group), free_bytes(group[0][1])
            if total > free:
                print(
                    f"onellm fit: warning: {' and '.join(what for what, _, _ in group)} need about "
                    f"{format_size(total)} more, but {format_size(free)} is free there",
                    file=sys.stderr,
                )
