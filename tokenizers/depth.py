"""depth: the RGB image and its depth map (rendered as 3 channels) as two frames.

Also hosts what depth and normal share: the pair tokenizer and the pairing loader."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from onellm.config import EncoderConfig
from onellm.errors import BadInputError
from onellm.modality import ModalitySpec
from onellm.readers import open_image, read_npy

from .image import FrameTokenizer, crop_views, open_rgb

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
    paths: list[Path], tokenizer: ImageMapPairTokenizer, train: bool, read_map: Callable[[Path], Image.Image]
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
    return crop_views([rgb, view], tokenizer.encoder_config.image_size, train)


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


def read_depth(path: Path) -> Image.Image:
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
    paths: list[Path], tokenizer: ImageMapPairTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return load_pair(paths, tokenizer, train, read_depth)


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
    synthesize="onellm.data.synth.depth:synthesize",
    preview="onellm.demo.previews:depth_preview",
)
