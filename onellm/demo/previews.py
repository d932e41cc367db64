"""What the demo shows of an input before the model sees it. Each built-in spec names one of
these as its `preview`; each takes the sample's files (the modality's own first, then its
companions) and returns a matplotlib Figure, a PIL image, a path the browser can show
(image, video, audio), or a list of those.

They read files with the modality's own readers, so a preview accepts exactly the files
the loader does and fails with the same BadInputError, but they show the file as it is:
the whole recording, not the model's crop of it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

MAX_POINTS = 4096  # enough to see the shape; a plot of 100k points crawls
IMU_CHANNELS = ("acc x", "acc y", "acc z", "gyro x", "gyro y", "gyro z")


def image_preview(paths: list[Path]) -> Image.Image:
    """The image as the loader reads it, as RGB: browsers show no TIFF or 16-bit PNG."""
    from onellm.tokenizers.image import open_rgb

    return open_rgb(Path(paths[0]))


def video_preview(paths: list[Path]) -> Path:
    return Path(paths[0])


def audio_preview(paths: list[Path]) -> list[Figure | Path]:
    """A spectrogram of the first channel (the one the model hears), and the file itself
    for the audio player."""
    from onellm.tokenizers.audio import read_first_channel

    wave, rate = read_first_channel(Path(paths[0]))
    fig = Figure(figsize=(6, 2.6), layout="constrained")
    ax = fig.add_subplot()
    if len(wave) >= 512:
        ax.specgram(wave, Fs=rate, NFFT=512, noverlap=384, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=f"{paths[0].name}: {len(wave) / rate:.1f} s at {rate} Hz")
    return [fig, Path(paths[0])]


def point_preview(paths: list[Path]) -> Figure:
    """A 3-D scatter of (a subsample of) the cloud, in its own colours when it has them."""
    from onellm.tokenizers.point import read_cloud

    cloud = read_cloud(Path(paths[0]))
    if len(cloud) > MAX_POINTS:
        cloud = cloud[np.random.default_rng(0).choice(len(cloud), MAX_POINTS, replace=False)]
    xyz, rgb = cloud[:, :3], np.clip(cloud[:, 3:6], 0, 1)
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*xyz.T, s=2, c=rgb if rgb.any() else xyz[:, 2], depthshade=False)
    ax.set(xlabel="x", ylabel="y", zlabel="z", title=f"{paths[0].name}: {len(xyz)} points shown")
    return fig


def depth_preview(paths: list[Path]) -> Figure:
    """The depth map in a colour map (near dark, far bright), beside its RGB image."""
    from onellm.tokenizers.depth import read_depth

    depth = np.asarray(read_depth(Path(paths[0])), dtype=np.float32)[..., 0]
    return _beside_rgb(paths, depth, "depth", cmap="turbo")


def normal_preview(paths: list[Path]) -> Figure:
    """The normal map as its (n + 1) / 2 colours, beside its RGB image."""
    from onellm.tokenizers.normal import read_normal

    return _beside_rgb(paths, np.asarray(read_normal(Path(paths[0]))), "normal")


def _beside_rgb(paths: list[Path], shown: np.ndarray, label: str, cmap: str | None = None) -> Figure:
    from onellm.tokenizers.image import open_rgb

    panels = 2 if len(paths) > 1 else 1
    fig = Figure(figsize=(4 * panels, 3.6), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if panels == 2:
        axes[0].imshow(np.asarray(open_rgb(Path(paths[1]))))
        axes[0].set_title(f"rgb: {Path(paths[1]).name}")
    image = axes[-1].imshow(shown, cmap=cmap)
    axes[-1].set_title(f"{label}: {Path(paths[0]).name}")
    if cmap is not None:
        fig.colorbar(image, ax=axes[-1], shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    return fig


def imu_preview(paths: list[Path]) -> Figure:
    """The six accelerometer and gyroscope channels over time."""
    from onellm.tokenizers.imu import read_imu

    samples, times = read_imu(Path(paths[0]), len(IMU_CHANNELS))
    x = times - times[0] if times is not None else np.arange(len(samples))
    fig = Figure(figsize=(6, 5), layout="constrained")
    axes = fig.subplots(len(IMU_CHANNELS), 1, sharex=True)
    for ax, values, name in zip(axes, samples.T, IMU_CHANNELS):
        ax.plot(x, values, linewidth=0.8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[0].set_title(f"{paths[0].name}: {len(samples)} samples")
    axes[-1].set_xlabel("time (s)" if times is not None else "sample")
    return fig


def fmri_preview(paths: list[Path]) -> Figure:
    """The voxel vector, as a line and folded into a square so that its structure shows."""
    from onellm.tokenizers.fmri import read_voxels

    vector = read_voxels([Path(p) for p in paths])
    side = int(np.ceil(np.sqrt(vector.size)))
    square = np.full(side * side, np.nan, dtype=np.float32)
    square[: vector.size] = vector
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    line, grid = fig.subplots(1, 2, width_ratios=(2, 1))
    line.plot(vector, linewidth=0.5)
    line.set(xlabel="voxel", ylabel="value", title=f"{paths[0].name}: {vector.size} voxels")
    grid.imshow(square.reshape(side, side), cmap="coolwarm")
    grid.set_axis_off()
    return fig

