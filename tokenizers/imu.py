"""imu: Conv1d over the 6 accelerometer + gyroscope channels, its own positional table."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from onellm.config import EncoderConfig
from onellm.errors import BadInputError, describe
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.readers import read_npy


@dataclass
class IMUOptions:
    channels: int = 6
    samples: int = 400
    kernel: int = 10
    stride: int = 1
    # Per-channel standardisation of the window. The published weights saw raw values
    # (Ego4D's units), so the onellm-7b preset turns it off.
    normalize: bool = True
    # Padding before resampling to 200 Hz: "zeros" is torchaudio's own, as published (a
    # constant signal rings over the first and last few output samples); "edge" repeats the
    # end samples first, so nothing rings.
    resample_padding: str = "zeros"


SAMPLE_RATE = 200
# Source samples of edge padding per unit of rate ratio, wider than torchaudio's sinc kernel
# (6 zero crossings / 0.99 rolloff), so the resampler never sees the zeros it pads with.
_EDGE_PAD = 8


class IMUTokenizer(ModalityTokenizer):
    Options = IMUOptions

    def __init__(self, encoder: EncoderConfig, options: IMUOptions) -> None:
        super().__init__(encoder, options)
        o = options
        if o.resample_padding not in ("zeros", "edge"):
            raise ValueError(f"IMU resample_padding must be 'zeros' or 'edge', got {o.resample_padding!r}")
        self.input_shape = (o.channels, o.samples)
        self.num_patches = (o.samples - o.kernel) // o.stride + 1
        if self.num_patches < 1:
            raise ValueError(f"IMU kernel {o.kernel} is longer than the {o.samples}-sample window")
        self.conv = nn.Conv1d(o.channels, encoder.width, kernel_size=o.kernel, stride=o.stride, bias=False)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        patches = self.conv(x.to(self.conv.weight.dtype)).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


def read_imu(path: Path, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """[N, channels] float32 samples and the timestamps in seconds when the file has them."""
    if path.suffix.lower() == ".npy":
        array, times = read_npy(path), None
    else:
        try:
            array, times = _read_csv(path)
        except Exception as err:  # numpy's text parser raises ValueError, UnicodeDecodeError and more
            raise BadInputError(path, f"not a readable IMU CSV file ({describe(err)})") from err
    if array.size == 0:
        raise BadInputError(path, "no IMU samples")
    if array.ndim == 2 and array.shape[1] != channels and array.shape[0] == channels:
        array = array.T
    if array.ndim != 2 or array.shape[1] != channels:
        layouts = f"[N, {channels}] or [{channels}, N]"
        raise BadInputError(path, f"expected {channels} IMU channels ({layouts}), got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise BadInputError(path, "IMU samples hold NaN or infinite values")
    return array, times


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """With a header, a `timestamp` (or `time`) column in seconds and the channel columns in
    file order; without one, channel columns only."""
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    names = [n.strip().lower() for n in first.split(",")]
    try:
        [float(n) for n in names]
        header = False
    except ValueError:
        header = True
    with warnings.catch_warnings():  # an empty table is reported as no samples, not warned about
        warnings.filterwarnings("ignore", "loadtxt: input contained no data")
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=int(header))
    time_cols = [i for i, n in enumerate(names) if header and n in ("timestamp", "time")]
    if not time_cols:
        return table.astype(np.float32), None
    rest = [i for i in range(table.shape[1]) if i != time_cols[0]]
    return table[:, rest].astype(np.float32), table[:, time_cols[0]]


def sample_rate(path: Path, times: np.ndarray | None, meta: dict) -> float:
    if meta.get("sample_rate"):
        return float(meta["sample_rate"])
    if times is None:
        raise BadInputError(path, "unknown sample rate: give a timestamp column or meta sample_rate")
    if len(times) < 2 or not (np.diff(times) > 0).all():
        raise BadInputError(path, "timestamps must increase strictly")
    rate = (len(times) - 1) / float(times[-1] - times[0])
    if rate < 1:
        raise BadInputError(path, f"sample rate {rate:.3g} Hz from the timestamps is below 1 Hz; are they in seconds?")
    return rate


def resample(x: torch.Tensor, rate: int, target: int, padding: str = "zeros") -> torch.Tensor:
    """torchaudio's sinc resampling of [C, N]; with padding "edge" the ends are padded by
    repetition first, so its zero padding cannot make even a constant signal ring."""
    if rate == target:
        return x
    if padding == "zeros":
        return AF.resample(x, rate, target)
    step = rate // math.gcd(rate, target)  # source samples that map to a whole output sample
    pad = step * math.ceil(_EDGE_PAD * max(1.0, rate / target) / step)
    out = AF.resample(torch.nn.functional.pad(x[None], (pad, pad), mode="replicate")[0], rate, target)
    skip = pad * target // rate
    return out[:, skip : skip + math.ceil(x.shape[1] * target / rate)]


def load_imu(
    paths: list[Path], tokenizer: IMUTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[channels, samples] at 200 Hz: the optional meta start/end window (seconds from the
    first sample), resampled, then cropped or zero-padded at the end."""
    o, meta = tokenizer.options, meta or {}
    array, times = read_imu(paths[0], o.channels)
    rate = sample_rate(paths[0], times, meta)
    offsets = times - times[0] if times is not None else np.arange(len(array)) / rate
    start, end = float(meta.get("start", 0.0)), float(meta.get("end", math.inf))
    array = array[(offsets >= start - 1e-9) & (offsets < end)]
    if len(array) == 0:
        raise BadInputError(paths[0], f"no IMU samples between {start} s and {end} s")
    x = torch.from_numpy(np.ascontiguousarray(array.T))
    x = resample(x, round(rate), SAMPLE_RATE, o.resample_padding)[:, : o.samples]
    if o.normalize:
        x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True, correction=0) + 1e-6)
    return torch.nn.functional.pad(x, (0, o.samples - x.shape[1]))


IMU = ModalitySpec(
    name="imu",
    tokenizer=IMUTokenizer,
    load=load_imu,
    extensions=(".npy", ".csv"),
    prompt="Describe the scene.",
    description="6-channel IMU window through a Conv1d",
    synthesize="onellm.data.synth.imu:synthesize",
    preview="onellm.demo.previews:imu_preview",
)
