"""From a path to one model input: .npy arrays directly, other files through the
modality's registered loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .modality import ModalityTokenizer
from .registry import get_modality


def guess_modality(path: Path, tokenizers: dict[str, ModalityTokenizer]) -> str:
    """By extension; a .npy by which modality's input shape it holds."""
    name = path.name.lower()
    hits = [m for m in tokenizers if any(name.endswith(ext) for ext in get_modality(m).extensions)]
    if name.endswith(".npy") and path.is_file():
        shaped = [m for m in tokenizers if _is_raw_tensor(path, tokenizers[m])]
        hits = shaped or hits
    if len(hits) != 1:
        found = f"could be any of {', '.join(hits)}" if hits else "matches no modality's extensions"
        raise ValueError(f"{path}: {found}; pass --modality")
    return hits[0]


def load_input(path: Path, modality: str, tokenizer: ModalityTokenizer) -> torch.Tensor:
    """One sample of `tokenizer.input_shape`; errors name the file and the problem."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    spec = get_modality(modality)
    if path.suffix.lower() == ".npy" and spec.load is None or _is_raw_tensor(path, tokenizer):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable .npy array ({err})") from err
        x = torch.from_numpy(np.ascontiguousarray(array)).float()
        if tuple(x.shape) != tuple(tokenizer.input_shape):
            raise ValueError(
                f"{path}: array of shape {list(x.shape)}, but {modality} input is {list(tokenizer.input_shape)}"
            )
        return x
    if spec.load is None:
        raise ValueError(
            f"{path}: no file loader for {modality}; pass a .npy array of shape {list(tokenizer.input_shape)}"
        )
    x = spec.load(path, tokenizer)
    if tuple(x.shape) != tuple(tokenizer.input_shape):
        raise ValueError(f"{path}: {modality} loader gave {list(x.shape)}, expected {list(tokenizer.input_shape)}")
    return x


def _is_raw_tensor(path: Path, tokenizer: ModalityTokenizer) -> bool:
    """A .npy that already holds the tokenizer's input shape skips the modality's loader."""
    if path.suffix.lower() != ".npy":
        return False
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return True  # let the .npy branch report it
    return tuple(shape) == tuple(tokenizer.input_shape)
