"""imu: Conv1d over the 6 accelerometer + gyroscope channels, its own positional table;
synthetic body-worn traces of one activity; the demo's channel plot."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from onellm.config import EncoderConfig
from onellm.data.synth.common import pick, rotation
from onellm.errors import BadInputError, describe
from onellm.modality import LoadContext, ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.readers import read_npy
from onellm.sources import FileSource

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


def read_imu(path: FileSource, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
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


def _read_csv(path: FileSource) -> tuple[np.ndarray, np.ndarray | None]:
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
    # An open file, not the name: a file held in memory has none that numpy could open.
    with path.open(encoding="utf-8") as f, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "loadtxt: input contained no data")  # reported as no samples
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2, skiprows=int(header))
    time_cols = [i for i, n in enumerate(names) if header and n in ("timestamp", "time")]
    if not time_cols:
        return table.astype(np.float32), None
    rest = [i for i in range(table.shape[1]) if i != time_cols[0]]
    return table[:, rest].astype(np.float32), table[:, time_cols[0]]


def sample_rate(path: FileSource, times: np.ndarray | None, meta: dict) -> float:
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


def load_imu(paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None) -> torch.Tensor:
    """[channels, samples] at 200 Hz: the optional meta start/end window (seconds from the
    first sample), resampled, then cropped or zero-padded at the end."""
    o, meta = ctx.options, meta or {}
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


# ---- synthetic samples (`onellm data synth`): a body-worn IMU during one activity ---------
# Accelerometers measure specific force, so a still device reads +9.81 m/s^2 against gravity
# and a device in free fall (mid-jump) reads about zero.

GRAVITY = 9.81
SYNTH_RATES = (50, 100)
CAPTIONS = {
    "idle": ("the person is standing still", "someone stands still without moving"),
    "walking": ("the person is walking", "someone walks at a steady pace"),
    "running": ("the person is running", "someone runs quickly"),
    "turning left": ("the person turns to the left", "someone walks and turns left"),
    "turning right": ("the person turns to the right", "someone walks and turns right"),
    "jumping": ("the person jumps {times}", "someone jumps up and lands {times}"),
}
TIMES = {1: "once", 2: "twice", 3: "three times"}


def _gait(t: np.ndarray, steps_per_s: float, bounce: float, sway: float, rng: np.random.Generator) -> np.ndarray:
    """[N, 6] body motion for walking or running: a vertical bounce per step, a forward
    surge and a side sway per stride (two steps), and the matching small rotations."""
    phase = 2 * np.pi * steps_per_s * t + rng.uniform(0, 2 * np.pi)
    out = np.zeros((t.size, 6))
    out[:, 2] = bounce * np.sin(phase) + 0.3 * bounce * np.sin(2 * phase)
    out[:, 0] = 0.4 * bounce * np.sin(phase + 0.5)
    out[:, 1] = sway * np.sin(phase / 2)
    out[:, 3] = 0.08 * bounce * np.sin(phase / 2)
    out[:, 4] = 0.05 * bounce * np.sin(phase)
    out[:, 5] = 0.06 * bounce * np.sin(phase / 2 + 1.0)
    return out


def _jumps(t: np.ndarray, times: int, rng: np.random.Generator) -> np.ndarray:
    """[N, 6]: crouch, push-off peak, ~0.35 s of free fall (the reading drops to zero, i.e.
    minus gravity here), then a landing spike, for each jump."""
    out = np.zeros((t.size, 6))
    starts = np.linspace(0.3, t[-1] - 0.9, times) + rng.uniform(-0.05, 0.05, size=times)
    for start in starts:
        push, flight = start + 0.2, rng.uniform(0.3, 0.4)
        out[:, 2] += -3.0 * np.exp(-(((t - start) / 0.08) ** 2))
        out[:, 2] += 12.0 * np.exp(-(((t - push) / 0.06) ** 2))
        out[:, 2] += np.where((t > push + 0.08) & (t < push + 0.08 + flight), -GRAVITY, 0.0)
        out[:, 2] += 25.0 * np.exp(-(((t - push - 0.1 - flight) / 0.04) ** 2))
        out[:, 4] += 0.8 * np.exp(-(((t - push - 0.1 - flight) / 0.05) ** 2))
    return out


def _turn(t: np.ndarray, direction: float, rng: np.random.Generator) -> np.ndarray:
    """[N, 6] yaw rate of a turn of 60-120 degrees over about a second, mid-window."""
    angle, width = np.deg2rad(rng.uniform(60, 120)), rng.uniform(0.7, 1.1)
    bump = np.exp(-(((t - t[-1] / 2) / (width / 2.5)) ** 2))
    out = np.zeros((t.size, 6))
    out[:, 5] = direction * angle * bump / (bump.sum() * (t[1] - t[0]))
    out[:, 1] = direction * 1.2 * bump  # centripetal pull towards the inside of the turn
    return out


def motion(activity: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Body-frame motion [N, 6] (no gravity, no noise) and the number of jumps."""
    if activity == "idle":
        return np.zeros((t.size, 6)), 0
    if activity == "walking":
        return _gait(t, rng.uniform(1.6, 2.2), rng.uniform(1.5, 3.0), 0.5, rng), 0
    if activity == "running":
        return _gait(t, rng.uniform(2.6, 3.2), rng.uniform(7.0, 11.0), 1.2, rng), 0
    if activity in ("turning left", "turning right"):
        # Left is a positive (counter-clockwise) yaw rate about the upward z axis.
        direction = 1.0 if activity == "turning left" else -1.0
        return _gait(t, rng.uniform(1.6, 2.0), rng.uniform(1.0, 2.0), 0.4, rng) + _turn(t, direction, rng), 0
    if activity == "jumping":
        times = int(rng.integers(1, 4 if t[-1] > 3.0 else 3))
        return _jumps(t, times, rng), times
    raise ValueError(f"unknown activity {activity!r}")


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.npy` [N, 6] (ax, ay, az m/s^2, gx, gy, gz rad/s) or `<id>.csv` with a
    timestamp column, 2-4 s at 50 or 100 Hz; returns manifest fields (meta sample_rate)."""
    activity, rate = pick(rng, tuple(CAPTIONS)), pick(rng, SYNTH_RATES)
    t = np.arange(int(rng.uniform(2.0, 4.0) * rate)) / rate
    body, jumps = motion(activity, t, rng)
    # The device is worn slightly tilted, so gravity (and all motion) shows up a little on
    # every axis; tilting after adding gravity keeps free fall at an exact zero reading.
    body[:, 2] += GRAVITY
    tilt = rotation(*rng.normal(0, 0.08, size=2))
    trace = np.concatenate([body[:, :3] @ tilt.T, body[:, 3:] @ tilt.T], axis=1)
    trace += rng.normal(0, 1.0, size=6) * np.array([0.02, 0.02, 0.02, 0.002, 0.002, 0.002])  # bias
    trace += rng.normal(size=trace.shape) * np.array([0.05, 0.05, 0.05, 0.01, 0.01, 0.01])
    trace = trace.astype(np.float32)

    if rng.uniform() < 0.3:
        path = out_dir / f"{sample_id}.csv"
        table = np.concatenate([t[:, None], trace], axis=1)
        np.savetxt(path, table, delimiter=",", fmt="%.5f", header="timestamp,ax,ay,az,gx,gy,gz", comments="")
    else:
        path = out_dir / f"{sample_id}.npy"
        np.save(path, trace)

    caption = pick(rng, CAPTIONS[activity]).format(times=TIMES.get(jumps, ""))
    moving = "no" if activity == "idle" else "yes"
    qa = [
        {"question": "What is the person doing?", "answer": activity.replace("idle", "standing still")},
        {"question": "Is the person moving?", "answer": moving},
    ]
    if jumps:
        qa.append({"question": "How many times does the person jump?", "answer": TIMES[jumps]})
    return {
        "files": [path.name],
        "caption": caption,
        "qa": qa,
        "meta": {"activity": activity, "sample_rate": rate, "seconds": round(t.size / rate, 2), "jumps": jumps},
    }


# ---- demo preview -------------------------------------------------------------------------

CHANNEL_NAMES = ("acc x", "acc y", "acc z", "gyro x", "gyro y", "gyro z")


def preview(paths: list[Path]) -> Figure:
    """The six accelerometer and gyroscope channels over time."""
    from matplotlib.figure import Figure  # the demo's dependency, not the loader's

    samples, times = read_imu(Path(paths[0]), len(CHANNEL_NAMES))
    x = times - times[0] if times is not None else np.arange(len(samples))
    fig = Figure(figsize=(6, 5), layout="constrained")
    axes = fig.subplots(len(CHANNEL_NAMES), 1, sharex=True)
    for ax, values, name in zip(axes, samples.T, CHANNEL_NAMES):
        ax.plot(x, values, linewidth=0.8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[0].set_title(f"{paths[0].name}: {len(samples)} samples")
    axes[-1].set_xlabel("time (s)" if times is not None else "sample")
    return fig


IMU = ModalitySpec(
    name="imu",
    tokenizer=IMUTokenizer,
    load=load_imu,
    extensions=(".npy", ".csv"),
    prompt="Describe the scene.",
    description="6-channel IMU window through a Conv1d",
    synthesize=synthesize,
    preview=preview,
)
