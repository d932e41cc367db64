"""Synthetic point clouds: 2048 points on the surface of one coloured solid."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import COLOURS, SOLIDS, article, pick, rotation, sample_surface

POINTS = 2048


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Binary PLY with 8-bit colours through open3d; rgb in [0, 1]."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64))
    if not o3d.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=False):
        raise OSError(f"{path}: open3d could not write the point cloud")


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.ply` (or `<id>.npy` [2048, 6], xyz then rgb in [0, 1]); returns manifest fields."""
    solid, colour = pick(rng, SOLIDS), pick(rng, tuple(COLOURS))
    xyz = sample_surface(solid, POINTS, rng) @ rotation(rng.uniform(-0.6, 0.6), rng.uniform(0, 2 * np.pi)).T
    xyz = xyz * rng.uniform(0.5, 2.0) + rng.normal(0, 0.5, size=3) + rng.normal(0, 0.005, size=xyz.shape)
    shade = rng.uniform(-0.06, 0.06, size=(POINTS, 1))  # a little variation, the hue stays the named one
    rgb = np.clip(np.array(COLOURS[colour]) / 255.0 + shade, 0.0, 1.0)
    # Quantise to 8 bits for both formats, as a PLY stores them.
    rgb = np.round(rgb * 255) / 255
    if rng.uniform() < 0.25:
        path = out_dir / f"{sample_id}.npy"
        np.save(path, np.concatenate([xyz, rgb], axis=1).astype(np.float32))
    else:
        path = out_dir / f"{sample_id}.ply"
        write_ply(path, xyz, rgb)

    thing = f"{colour} {solid}"
    caption = pick(rng, (article(thing), f"a point cloud of {article(thing)}", f"{article(thing)} made of points"))
    return {
        "files": [path.name],
        "caption": caption,
        "qa": [
            {"question": "What shape is this?", "answer": solid},
            {"question": "What colour is the object?", "answer": colour},
        ],
        "meta": {"shape": solid, "colour": colour, "points": POINTS},
    }
