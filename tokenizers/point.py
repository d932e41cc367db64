"""point: farthest point sampling + k-nearest-neighbour groups + 1x1 conv + max over neighbours."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onellm.config import EncoderConfig
from onellm.errors import BadInputError
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed

from .point_ops import farthest_point_sample, gather_points, knn_indices


@dataclass
class PointOptions:
    points: int = 8192
    channels: int = 6  # xyz then rgb in [0, 1]
    centers: int = 1024
    neighbours: int = 32
    # Columns that sampling and grouping measure distance on. The published weights were
    # trained with [3, 6] (colour, not position) and raw, uncentred neighbours.
    sample_columns: tuple[int, int] = (0, 3)
    tie_break: str = "first"  # "cuda" reproduces the original CUDA sampler's choice among ties


class PointTokenizer(ModalityTokenizer):
    Options = PointOptions

    def __init__(self, encoder: EncoderConfig, options: PointOptions) -> None:
        super().__init__(encoder, options)
        o = options
        o.sample_columns = tuple(o.sample_columns)
        if not 0 <= o.sample_columns[0] < o.sample_columns[1] <= o.channels:
            raise ValueError(f"sample_columns {o.sample_columns} outside 0..{o.channels}")
        if o.neighbours > o.points or o.centers > o.points:
            raise ValueError(f"{o.centers} centers x {o.neighbours} neighbours need at least that many of {o.points} points")
        self.input_shape = (o.points, o.channels)
        self.num_patches = o.centers
        self.conv = nn.Conv2d(o.channels, encoder.width, kernel_size=1)
        self.pos_embed = learned_pos_embed(o.centers + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        o = self.options
        with torch.no_grad():
            cols = x[..., o.sample_columns[0] : o.sample_columns[1]].float()
            centers = farthest_point_sample(cols, o.centers, tie_break=o.tie_break)
            groups = knn_indices(gather_points(cols, centers), cols, o.neighbours)
        neighbours = gather_points(x.to(self.conv.weight.dtype), groups)  # [B, M, k, C]
        # A 1x1 conv is a linear map per neighbour; max over the neighbours pools each group.
        feats = F.linear(neighbours, self.conv.weight.flatten(1), self.conv.bias).amax(dim=2)
        return TokenGrid(feats.unsqueeze(1), self.pos_embed)

    def example_input(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        xyz = torch.rand(batch, self.options.points, 3, generator=generator) * 2 - 1
        rest = torch.rand(batch, self.options.points, self.options.channels - 3, generator=generator)
        return torch.cat([xyz, rest], dim=-1)


def read_cloud(path: Path) -> np.ndarray:
    """[N, 6] float32: xyz then rgb in [0, 1] (zeros when the file has no colours)."""
    if path.suffix.lower() == ".npy":
        try:
            cloud = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as err:
            raise BadInputError(path, f"not a readable .npy array ({err})") from err
        if cloud.ndim != 2 or cloud.shape[1] not in (3, 6):
            raise BadInputError(path, f"expected a point array [N, 3] or [N, 6], got {list(cloud.shape)}")
        if cloud.shape[1] == 6 and cloud[:, 3:].max(initial=0.0) > 1.0:
            cloud[:, 3:] /= 255.0  # colours stored as 0-255 bytes
    else:
        import open3d  # heavy; only mesh-style formats need it

        pcd = open3d.io.read_point_cloud(str(path))  # an unreadable file gives an empty cloud
        cloud = np.asarray(pcd.points, dtype=np.float32)
        colours = np.asarray(pcd.colors, dtype=np.float32) if pcd.has_colors() else np.zeros_like(cloud)
        cloud = np.concatenate([cloud, colours], axis=1)
    if cloud.shape[1] == 3:
        cloud = np.concatenate([cloud, np.zeros_like(cloud)], axis=1)
    if len(cloud) == 0:
        raise BadInputError(path, "no points read (empty or unreadable point cloud)")
    if not np.isfinite(cloud).all():
        raise BadInputError(path, "point cloud holds NaN or infinite values")
    return cloud


def resample_points(cloud: torch.Tensor, count: int, train: bool) -> torch.Tensor:
    """Exactly `count` points: farthest point sampling on xyz (eval) or a random subset (train)
    when there are more; repeated points when there are fewer (cyclic for eval, random for train)."""
    n = cloud.shape[0]
    if n > count:
        if train:
            return cloud[torch.randperm(n)[:count]]
        return cloud[farthest_point_sample(cloud[None, :, :3], count)[0]]
    extra = torch.randint(n, (count - n,)) if train else torch.arange(count - n) % n
    return torch.cat([cloud, cloud[extra]])


def normalize_xyz(cloud: torch.Tensor) -> torch.Tensor:
    """xyz centred on the mean and scaled into the unit sphere; colours untouched."""
    xyz = cloud[:, :3] - cloud[:, :3].mean(dim=0)
    radius = xyz.norm(dim=1).max().clamp_min(1e-12)
    return torch.cat([xyz / radius, cloud[:, 3:]], dim=1)


def load_point(
    paths: list[Path], tokenizer: PointTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[points, channels] from .ply/.pcd/.xyz (open3d) or .npy [N, 3] / [N, 6]."""
    o = tokenizer.options
    cloud = read_cloud(paths[0])
    if cloud.shape[1] < o.channels:
        raise BadInputError(paths[0], f"{cloud.shape[1]} channels per point, the tokenizer takes {o.channels}")
    cloud = resample_points(torch.from_numpy(cloud[:, : o.channels]), o.points, train)
    return normalize_xyz(cloud)


POINT = ModalitySpec(
    name="point",
    tokenizer=PointTokenizer,
    load=load_point,
    extensions=(".ply", ".pcd", ".xyz", ".npy"),
    prompt="What is this?",
    description="FPS + kNN groups through a 1x1 conv, max over neighbours",
    synthesize="onellm.data.synth.point:synthesize",
    preview="onellm.demo.previews:point_preview",
)
