"""Synthetic depth maps: one coloured solid near, at a middle distance or far from the
camera, as a 16-bit depth PNG in millimetres beside an RGB rendering of the same view."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .common import describe_solid, render_solid

SIZE = 96


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.depth.png` (uint16 millimetres, 0 = no surface) and `<id>.png` (RGB);
    returns manifest fields with files = [depth, rgb]."""
    scene = render_solid(SIZE, rng)
    # Millimetre depth with a few millimetres of sensor noise, as a structured-light camera gives.
    millimetres = scene["depth"] * 1000 + rng.normal(0, 2.0, size=scene["depth"].shape)
    depth = np.where(scene["depth"] > 0, np.clip(millimetres.round(), 1, 65535), 0).astype(np.uint16)
    depth_path, rgb_path = out_dir / f"{sample_id}.depth.png", out_dir / f"{sample_id}.png"
    Image.fromarray(depth).save(depth_path)
    Image.fromarray(scene["rgb"]).save(rgb_path)
    return {"files": [depth_path.name, rgb_path.name], **describe_solid(scene, "distance", rng)}
