"""normal: the RGB image and its surface-normal map as two frames; synthetic solids as
normal PNGs beside their RGB view; the demo's preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from onellm.data.synth.common import describe_solid, render_solid
from onellm.errors import BadInputError
from onellm.modality import LoadContext, ModalitySpec
from onellm.readers import read_npy
from onellm.sources import FileSource

from .depth import ImageMapPairTokenizer, beside_rgb, load_pair
from .image import open_rgb

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def read_normal(path: FileSource) -> Image.Image:
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
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return load_pair(paths, ctx, train, read_normal)


# ---- synthetic samples: one coloured solid on the left, in the centre or on the right ------

SYNTH_SIZE = 96


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.normal.png` ((n + 1) / 2 * 255 with x right, y up, z towards the viewer;
    black where there is no surface) and `<id>.png` (RGB); files = [normal, rgb]."""
    scene = render_solid(SYNTH_SIZE, rng)
    surface = np.linalg.norm(scene["normal"], axis=-1, keepdims=True) > 0
    encoded = np.where(surface, np.round((scene["normal"] + 1) / 2 * 255), 0).astype(np.uint8)
    normal_path, rgb_path = out_dir / f"{sample_id}.normal.png", out_dir / f"{sample_id}.png"
    Image.fromarray(encoded).save(normal_path)
    Image.fromarray(scene["rgb"]).save(rgb_path)
    return {"files": [normal_path.name, rgb_path.name], **describe_solid(scene, "side", rng)}


def preview(paths: list[Path]) -> Figure:
    """The normal map as its (n + 1) / 2 colours, beside its RGB image."""
    return beside_rgb(paths, np.asarray(read_normal(Path(paths[0]))), "normal")


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
    synthesize=synthesize,
    preview=preview,
)
