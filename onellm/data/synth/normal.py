"""Synthetic surface-normal maps: one coloured solid on the left, in the centre or on the
right, as an 8-bit normal PNG beside an RGB rendering of the same view."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .common import describe_solid, render_solid

SIZE = 96


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.normal.png` ((n + 1) / 2 * 255 with x right, y up, z towards the viewer;
    black where there is no surface) and `<id>.png` (RGB); files = [normal, rgb]."""
    scene = render_solid(SIZE, rng)
    surface = np.linalg.norm(scene["normal"], axis=-1, keepdims=True) > 0
    encoded = np.where(surface, np.round((scene["normal"] + 1) / 2 * 255), 0).astype(np.uint8)
    normal_path, rgb_path = out_dir / f"{sample_id}.normal.png", out_dir / f"{sample_id}.png"
    Image.fromarray(encoded).save(normal_path)
    Image.fromarray(scene["rgb"]).save(rgb_path)
    return {"files": [normal_path.name, rgb_path.name], **describe_solid(scene, "side", rng)}
