"""Lightning checkpoints written atomically and read without arbitrary pickle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .disk import format_size, free_bytes, newest_checkpoint, tensor_bytes


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, mostly): says where, how much it
    needs and has, and which checkpoint is still good."""


class _Recording:
    """A file whose write errors are kept: torch.save reports a failed write (ENOSPC) as a
    RuntimeError about a stream position, which no longer says the disk is full."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same directory, fsync, then rename over the target:
    a crash while saving leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        out = None
        try:
            with open(tmp, "wb") as f:
                out = _Recording(f)
                torch.save(checkpoint, out)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            # Whatever stopped the save (a full disk, Ctrl-C), the previous checkpoint stays.
            tmp.unlink(missing_ok=True)
            cause = out.error if out is not None and out.error is not None else err
            if isinstance(cause, OSError):
                raise self._write_error(path, checkpoint, cause) from err
            raise

    @staticmethod
    def _write_error(path: Path, checkpoint: dict[str, Any], err: OSError) -> CheckpointWriteError:
        good = newest_checkpoint(path.parent)
        last = f"the last good checkpoint is {good}" if good else "there is no earlier checkpoint"
        return CheckpointWriteError(
            f"could not write checkpoint {path.name} in {path.parent}: {err.strerror or err}; it needs about "
            f"{format_size(tensor_bytes(checkpoint))} and {format_size(free_bytes(path.parent))} is free there; {last}"
        )

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err
