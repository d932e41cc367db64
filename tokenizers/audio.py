"""audio: Conv2d patches over a [1, mel, frames] kaldi fbank, with its own positional table."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed


@dataclass
class AudioOptions:
    mel_bins: int = 128
    frames: int = 1024
    kernel: int = 16
    stride: int = 10


class AudioTokenizer(ModalityTokenizer):
    Options = AudioOptions

    def __init__(self, encoder: EncoderConfig, options: AudioOptions) -> None:
        super().__init__(encoder, options)
        o = options
        self.input_shape = (1, o.mel_bins, o.frames)
        grid = [(n - o.kernel) // o.stride + 1 for n in (o.mel_bins, o.frames)]
        if min(grid) < 1:
            raise ValueError(f"audio kernel {o.kernel} is larger than the {o.mel_bins}x{o.frames} fbank")
        self.num_patches = grid[0] * grid[1]
        self.conv = nn.Conv2d(1, encoder.width, kernel_size=o.kernel, stride=o.stride)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        # [B, W, mel, time] flattened mel-major, as the published weights expect.
        patches = self.conv(x.to(self.conv.weight.dtype)).flatten(2).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


AUDIO = ModalitySpec(
    name="audio",
    tokenizer=AudioTokenizer,
    extensions=(".wav", ".flac", ".ogg", ".mp3"),
    prompt="Provide a one-sentence caption for the provided audio.",
    description="kaldi fbank [1, mel, frames] through a strided Conv2d",
    synthesize="onellm.data.synth.audio:synthesize",
    preview="onellm.demo.previews:audio_preview",
)
