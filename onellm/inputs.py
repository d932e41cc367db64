"""From files to one model input: a .npy that already holds the input shape directly, other
files through the modality's registered loader."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import BadInputError, describe
from .modality import LoadContext, ModalityTokenizer
from .readers import npy_shape, read_npy
from .registry import get_modality
from .sources import FileSource, MemoryFile, as_source

# One file, rather than a list of them.
_ONE_FILE = (str, os.PathLike, MemoryFile)


def guess_modality(path: Path, tokenizers: dict[str, ModalityTokenizer | LoadContext]) -> str:
    """By the longest matching extension (so `x.depth.png` is depth, not image); a .npy that
    holds exactly one modality's input shape is that modality."""
    name = path.name.lower()
    shaped = []
    if name.endswith(".npy") and path.is_file():
        shaped = [m for m in tokenizers if _is_raw_tensor(path, tokenizers[m])]
    candidates = shaped or list(tokenizers)
    matches = {m: max((len(e) for e in get_modality(m).extensions if name.endswith(e)), default=0) for m in candidates}
    longest = max(matches.values(), default=0)
    # A raw array of one modality's input shape needs no extension of its own.
    hits = [m for m, n in matches.items() if n and n == longest] or shaped
    if len(hits) != 1:
        found = f"could be any of {', '.join(hits)}" if hits else "matches no modality's extensions"
        raise ValueError(f"{path}: {found}; pass --modality")
    return hits[0]


def load_input(
    paths: Sequence[FileSource | str] | FileSource | str,
    modality: str,
    tokenizer: ModalityTokenizer | LoadContext,
    train: bool = False,
    meta: dict | None = None,
) -> torch.Tensor:
    """One sample of `tokenizer.input_shape` from the modality's own file (paths[0]) and its
    companions (paths[1:]); errors are BadInputError naming the file, the modality and the problem.
    `tokenizer` is the model's tokenizer module or its LoadContext: the loader sees only the latter."""
    try:
        x = _load(paths, modality, LoadContext.of(tokenizer), train, meta)
    except BadInputError as err:
        if err.modality is None:
            raise BadInputError(err.path, err.problem, modality) from err
        raise
    if not torch.isfinite(x).all():
        raise BadInputError(
            as_source(paths if isinstance(paths, _ONE_FILE) else paths[0]),
            "the input holds NaN or infinite values",
            modality,
        )
    return x


def require_file(path: FileSource) -> None:
    """BadInputError unless `path` is an existing file (a directory says so)."""
    if path.is_dir():
        raise BadInputError(path, "is a directory; pass the files in it")
    if not path.is_file():
        raise BadInputError(path, "no such file")


def _load(
    paths: Sequence[FileSource | str] | FileSource | str,
    modality: str,
    ctx: LoadContext,
    train: bool,
    meta: dict | None,
) -> torch.Tensor:
    paths = [as_source(p) for p in ([paths] if isinstance(paths, _ONE_FILE) else paths)]
    if not paths:
        raise ValueError(f"no files given for a {modality} input")
    for path in paths:
        require_file(path)
    path, spec = paths[0], get_modality(modality)
    if spec.load is None:
        if path.suffix.lower() == ".npy":
            return _load_raw(path, modality, ctx)
        raise BadInputError(path, f"no file loader for {modality}; pass a .npy array of shape {list(ctx.input_shape)}")
    # The loader comes first even for an array of the input's shape: a PointLLM cloud of
    # exactly 8192 points still needs centring and scaling.
    try:
        x = spec.load(paths, ctx, train=train, meta=meta)
    except Exception as err:
        if _is_raw_tensor(path, ctx):
            return _load_raw(path, modality, ctx)
        if isinstance(err, BadInputError):
            raise
        # A loader (a plugin's, say) that let a decoder's error through: still one bad file.
        raise BadInputError(path, f"the loader raised {describe(err)}") from err
    if tuple(x.shape) != tuple(ctx.input_shape):
        raise BadInputError(path, f"{modality} loader gave {list(x.shape)}, expected {list(ctx.input_shape)}")
    return x


def _load_raw(path: FileSource, modality: str, ctx: LoadContext) -> torch.Tensor:
    x = torch.from_numpy(read_npy(path))
    if tuple(x.shape) != tuple(ctx.input_shape):
        raise BadInputError(path, f"array of shape {list(x.shape)}, but {modality} input is {list(ctx.input_shape)}")
    return x


def _is_raw_tensor(path: FileSource, tokenizer: ModalityTokenizer | LoadContext) -> bool:
    """A .npy that already holds the tokenizer's input shape (used as is when the loader
    cannot read it as a file of its own format)."""
    return path.suffix.lower() == ".npy" and npy_shape(path) == tuple(tokenizer.input_shape)
