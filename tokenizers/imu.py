"""imu: Conv1d over the 6 accelerometer + gyroscope channels, its own positional table."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed


@dataclass
class IMUOptions:
    channels: int = 6
    samples: int = 400
    kernel: int = 10
    stride: int = 1


class IMUTokenizer(ModalityTokenizer):
    Options = IMUOptions

    def __init__(self, encoder: EncoderConfig, options: IMUOptions) -> None:
        super().__init__(encoder, options)
        o = options
        self.input_shape = (o.channels, o.samples)
        self.num_patches = (o.samples - o.kernel) // o.stride + 1
        if self.num_patches < 1:
            raise ValueError(f"IMU kernel {o.kernel} is longer than the {o.samples}-sample window")
        self.conv = nn.Conv1d(o.channels, encoder.width, kernel_size=o.kernel, stride=o.stride, bias=False)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        patches = self.conv(x.to(self.conv.weight.dtype)).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


IMU = ModalitySpec(
    name="imu",
    tokenizer=IMUTokenizer,
    extensions=(".npy", ".csv"),
    prompt="Describe the scene.",
    description="6-channel IMU window through a Conv1d",
    synthesize="onellm.data.synth.imu:synthesize",
    preview="onellm.demo.previews:imu_preview",
)
