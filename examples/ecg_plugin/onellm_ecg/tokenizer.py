"""Tokenizer and loader: non-overlapping Conv1d patches over the leads, own positional table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onellm import ModalityTokenizer, TokenGrid
from onellm.config import EncoderConfig
from onellm.errors import BadInputError
from onellm.modality import LoadContext, learned_pos_embed
from onellm.sources import FileSource


@dataclass
class ECGOptions:
    leads: int = 12
    samples: int = 5000  # 10 s at 500 Hz
    patch: int = 50  # 100 ms per token


class ECGTokenizer(ModalityTokenizer):
    Options = ECGOptions

    def __init__(self, encoder: EncoderConfig, options: ECGOptions) -> None:
        super().__init__(encoder, options)
        if options.samples % options.patch:
            raise ValueError(f"ecg samples {options.samples} must be a multiple of patch {options.patch}")
        self.input_shape = (options.leads, options.samples)
        self.num_patches = options.samples // options.patch
        self.conv = nn.Conv1d(options.leads, encoder.width, kernel_size=options.patch, stride=options.patch)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        patches = self.conv(x.to(self.conv.weight.dtype)).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


def read_ecg(path: FileSource) -> np.ndarray:
    """The array in the file, as float32: .npy, or .csv of comma-separated numbers. Opened
    through `path.open`, so that a file held in memory (a streamed shard's) reads as well."""
    try:
        if path.name.endswith(".csv"):
            with path.open(encoding="utf-8") as f:
                return np.loadtxt(f, delimiter=",", dtype=np.float32, ndmin=2)
        with path.open("rb") as f:
            return np.load(f, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as err:
        raise BadInputError(path, f"not a readable ECG array ({err})") from err


def load_ecg(paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None) -> torch.Tensor:
    """.npy or .csv (paths[0]) of [samples, leads] or [leads, samples] in millivolts; cropped
    or zero-padded to the configured length, each lead standardised. `ctx` carries the
    tokenizer's options and input shape (not the tokenizer itself)."""
    path = paths[0]
    leads, samples = ctx.input_shape
    array = read_ecg(path)
    if array.ndim != 2 or leads not in array.shape:
        raise BadInputError(path, f"expected a [samples, {leads}] or [{leads}, samples] array, got {list(array.shape)}")
    if array.shape[0] != leads:
        array = array.T
    out = np.zeros((leads, samples), dtype=np.float32)
    n = min(samples, array.shape[1])
    out[:, :n] = array[:, :n]
    out -= out.mean(axis=1, keepdims=True)
    out /= out.std(axis=1, keepdims=True) + 1e-6
    return torch.from_numpy(out)


def preview(paths: list[Path]):
    """The first lead over time, for the demo (matplotlib is imported only when it is shown)."""
    from matplotlib.figure import Figure

    trace = read_ecg(Path(paths[0]))
    lead = trace[:, 0] if trace.shape[0] > trace.shape[1] else trace[0]
    fig = Figure(figsize=(6, 2.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lead, linewidth=0.6)
    ax.set(xlabel="sample", ylabel="lead 1", title=Path(paths[0]).name)
    return fig
