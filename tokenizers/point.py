"""point: farthest point sampling + k-nearest-neighbour groups + 1x1 conv + max over neighbours."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from onellm.config import EncoderConfig
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


POINT = ModalitySpec(
    name="point",
    tokenizer=PointTokenizer,
    extensions=(".ply", ".pcd", ".xyz", ".npy"),
    prompt="What is this?",
    description="FPS + kNN groups through a 1x1 conv, max over neighbours",
    synthesize="onellm.data.synth.point:synthesize",
    preview="onellm.demo.previews:point_preview",
)
