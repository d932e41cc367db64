"""Lazy, pickle-free access to a checkpoint: shapes first, tensors one at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BadInputError

# safetensors' dtype names; writer.py derives the inverse.
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class CheckpointReader:
    """A flat state dict on disk. `.pth` files are opened with torch.load(weights_only=True,
    mmap=True), so no arbitrary pickle runs and tensors are paged in only when read;
    `.safetensors` files through safe_open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(self.path, "no such checkpoint file")
        self._safe = None
        self._extra: dict[str, torch.Tensor] = {}
        if self.path.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                self._safe = safe_open(str(self.path), framework="pt")
            except Exception as err:  # safetensors raises its own error types
                raise BadInputError(self.path, f"not a readable safetensors file ({err})") from err
            self._meta = {}
            for key in self._safe.keys():
                view = self._safe.get_slice(key)
                self._meta[key] = (tuple(view.get_shape()), SAFETENSORS_DTYPES.get(view.get_dtype()))
        else:
            try:
                state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as err:  # unpickling and zip errors come in many types
                raise BadInputError(
                    self.path, f"cannot be read as a weights-only torch checkpoint in the zip format ({err})"
                ) from err
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise BadInputError(self.path, "expected a flat state dict of tensors")
            self._state = state
            self._meta = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}

    def supplement(self, tensors: dict[str, torch.Tensor]) -> list[str]:
        """Add the tensors whose keys the file lacks (the file wins); returns those keys."""
        added = [k for k in tensors if k not in self._meta]
        self._extra = {k: tensors[k] for k in added}
        self._meta.update({k: (tuple(tensors[k].shape), tensors[k].dtype) for k in added})
        return added

    def keys(self) -> list[str]:
        return list(self._meta)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._meta[key][0]

    def dtype(self, key: str) -> torch.dtype:
        return self._meta[key][1]

    def get(self, key: str) -> torch.Tensor:
        if key in self._extra:
            return self._extra[key]
        if self._safe is not None:
            return self._safe.get_tensor(key)
        return self._state[key]
