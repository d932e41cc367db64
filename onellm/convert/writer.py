"""A safetensors file written tensor by tensor, so a conversion never holds more than one
converted tensor in memory. The header (names, dtypes, shapes, offsets) is fixed up front."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from .reader import SAFETENSORS_DTYPES

_DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


class StreamingSafetensors:
    """Declare every tensor (name -> shape, dtype) up front, then `write` them in any order; `close` checks that
    all arrived and moves the file into place (it is written under a temporary name)."""

    def __init__(self, path: str | Path, entries: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        self._offsets: dict[str, tuple[int, int]] = {}
        # Widest dtypes first keeps every tensor aligned to its element size.
        order = sorted(entries, key=lambda k: -torch.empty((), dtype=entries[k][1]).element_size())
        offset = 0
        for name in order:
            shape, dtype = entries[name]
            size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            self._offsets[name] = (offset, offset + size)
            offset += size
        self._entries = entries
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._start = 8 + len(raw)
        self._file = open(self._tmp, "wb")
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self._file.truncate(self._start + offset)
        self._written: set[str] = set()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        shape, dtype = self._entries[name]
        if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
            raise ValueError(f"{name}: planned {list(shape)} {dtype}, got {list(tensor.shape)} {tensor.dtype}")
        begin, end = self._offsets[name]
        data = tensor.detach().contiguous().view(-1).view(torch.uint8).numpy()
        self._file.seek(self._start + begin)
        self._file.write(memoryview(data))
        self._written.add(name)

    def close(self) -> None:
        self._file.close()
        missing = set(self._entries) - self._written
        if missing:
            os.remove(self._tmp)
            raise ValueError(f"{self.path}: {len(missing)} planned tensors never written, e.g. {sorted(missing)[:3]}")
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
