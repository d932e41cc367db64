"""depth: the RGB image and its depth map (rendered as 3 channels) as two frames; synthetic
solids as 16-bit depth PNGs beside their RGB view; the demo's preview.

Also hosts what depth and normal share: the pair tokenizer, the pairing loader and the
preview beside the RGB image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from onellm.config import EncoderConfig
from onellm.data.synth.common import describe_solid, render_solid
from onellm.errors import BadInputError
from onellm.modality import LoadContext, ModalitySpec
from onellm.readers import open_image, read_npy
from onellm.sources import FileSource

from .image import FrameTokenizer, crop_views, open_rgb

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRIC_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


@dataclass
class PairOptions:
    """No options: an RGB image and its map are always exactly two frames."""


class ImageMapPairTokenizer(FrameTokenizer):
    Options = PairOptions

    def __init__(self, encoder: EncoderConfig, options: PairOptions) -> None:
        super().__init__(encoder, FrameTokenizer.Options(frames=2))
        self.options = options


def load_pair(
    paths: list[FileSource], ctx: LoadContext, train: bool, read_map: Callable[[FileSource], Image.Image]
) -> torch.Tensor:
    """[2, 3, S, S]: frame 0 the RGB image (paths[1]), frame 1 the map (paths[0]) resized to
    the RGB image's size; ONE crop for both (centre, or the same random resized crop when
    training), so the two frames stay pixel-aligned, as the published loader does."""
    if len(paths) < 2:
        raise BadInputError(paths[0], "needs its RGB image as a companion file (files: [map, rgb image])")
    if not paths[1].is_file():
        raise BadInputError(paths[0], f"its companion RGB image {paths[1]} does not exist")
    rgb = open_rgb(paths[1])
    view = read_map(paths[0])
    if view.size != rgb.size:
        view = view.resize(rgb.size, Image.BICUBIC)
    return crop_views([rgb, view], ctx.encoder.image_size, train)


def render_depth(depth: np.ndarray) -> Image.Image:
    """Metric depth -> grey RGB image: valid depths (finite, > 0) scaled linearly per image
    so the nearest is 0 and the farthest 255; missing depth (0, NaN) is black. Per-image
    scaling keeps indoor (metres) and outdoor (tens of metres) scenes equally contrasted."""
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape, dtype=np.uint8)
    if valid.any():
        near, far = depth[valid].min(), depth[valid].max()
        scaled = (depth[valid] - near) / max(far - near, 1e-6)
        out[valid] = np.round(scaled * 255).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")


def read_depth(path: FileSource) -> Image.Image:
    """A 16-bit PNG (millimetres) or .npy (metres) is metric and gets rendered; an 8-bit
    image is taken as already rendered and converted to RGB, as the original does."""
    if path.suffix.lower() == ".npy":
        depth = read_npy(path).squeeze()
        if depth.ndim != 2:
            raise BadInputError(path, f"expected a depth map [H, W], got {list(depth.shape)}")
        return render_depth(depth)
    with open_image(path) as img:
        if img.mode in METRIC_MODES:
            return render_depth(np.asarray(img, dtype=np.float32) / 1000.0)
    return open_rgb(path)


def load_depth(
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return load_pair(paths, ctx, train, read_depth)


# ---- synthetic samples: one coloured solid near, at a middle distance or far --------------

SYNTH_SIZE = 96


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.depth.png` (uint16 millimetres, 0 = no surface) and `<id>.png` (RGB) of
    one solid seen by a pinhole camera; returns manifest fields with files = [depth, rgb]."""
    scene = render_solid(SYNTH_SIZE, rng)
    # Millimetre depth with a few millimetres of sensor noise, as a structured-light camera gives.
    millimetres = scene["depth"] * 1000 + rng.normal(0, 2.0, size=scene["depth"].shape)
    depth = np.where(scene["depth"] > 0, np.clip(millimetres.round(), 1, 65535), 0).astype(np.uint16)
    depth_path, rgb_path = out_dir / f"{sample_id}.depth.png", out_dir / f"{sample_id}.png"
    Image.fromarray(depth).save(depth_path)
    Image.fromarray(scene["rgb"]).save(rgb_path)
    return {"files": [depth_path.name, rgb_path.name], **describe_solid(scene, "distance", rng)}


# ---- demo preview -------------------------------------------------------------------------


def preview(paths: list[Path]) -> Figure:
    """The depth map in a colour map (near dark, far bright), beside its RGB image."""
    depth = np.asarray(read_depth(Path(paths[0])), dtype=np.float32)[..., 0]
    return beside_rgb(paths, depth, "depth", cmap="turbo")


def beside_rgb(paths: list[Path], shown: np.ndarray, label: str, cmap: str | None = None) -> Figure:
    """A matplotlib Figure of the map `shown`, beside the RGB image (paths[1]) when there is one."""
    from matplotlib.figure import Figure  # the demo's dependency, not the loader's

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


DEPTH = ModalitySpec(
    name="depth",
    tokenizer=ImageMapPairTokenizer,
    load=load_depth,
    # Double extensions: a plain .png is an image; a depth map must say what it is.
    extensions=(".depth.png", ".depth.jpg", ".depth.npy"),
    prompt="Provide a one-sentence caption for the provided depth map.",
    official_name="rgbd",
    description="RGB image + depth map as two frames through the encoder's patch conv",
    companions=("rgb image",),
    synthesize=synthesize,
    preview=preview,
)
