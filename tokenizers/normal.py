"""normal: the RGB image and its surface-normal map as two frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from onellm.errors import BadInputError
from onellm.modality import ModalitySpec
from onellm.readers import read_npy

from .depth import ImageMapPairTokenizer, load_pair
from .image import open_rgb


def read_normal(path: Path) -> Image.Image:
    """A PNG already stores (n + 1) / 2 * 255; an .npy [H, W, 3] (or [3, H, W]) of unit
    normals in [-1, 1] is mapped the same way."""
    if path.suffix.lower() != ".npy":
        return open_rgb(path)
    normals = read_npy(path)
    if normals.ndim == 3 and normals.shape[0] == 3 and normals.shape[-1] != 3:
        normals = normals.transpose(1, 2, 0)
    if normals.ndim != 3 or normals.shape[-1] != 3:
        raise BadInputError(path, f"expected normals [H, W, 3], got {list(normals.shape)}")
    image = (np.clip(np.nan_to_num(normals), -1.0, 1.0) + 1.0) / 2.0 * 255.0
    return Image.fromarray(np.round(image).astype(np.uint8), "RGB")


def load_normal(
    paths: list[Path], tokenizer: ImageMapPairTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return load_pair(paths, tokenizer, train, read_normal)


NORMAL = ModalitySpec(
    name="normal",
    tokenizer=ImageMapPairTokenizer,
    load=load_normal,
    # Double extensions: a plain .png is an image; a normal map must say what it is.
    extensions=(".normal.png", ".normal.npy"),
    prompt="Provide a one-sentence caption for the provided normal map.",
    official_name="rgbn",
    description="RGB image + normal map as two frames through the encoder's patch conv",
    companions=("rgb image",),
    synthesize="onellm.data.synth.normal:synthesize",
    preview="onellm.demo.previews:normal_preview",
)
