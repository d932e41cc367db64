"""fmri: one Linear over the voxel vector, its output read as a few tokens."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed


@dataclass
class FMRIOptions:
    voxels: int = 15724  # NSD subject 1, "nsdgeneral" ROI
    tokens: int = 8


class FMRITokenizer(ModalityTokenizer):
    Options = FMRIOptions

    def __init__(self, encoder: EncoderConfig, options: FMRIOptions) -> None:
        super().__init__(encoder, options)
        self.input_shape = (options.voxels,)
        self.num_patches = options.tokens
        self.proj = nn.Linear(options.voxels, encoder.width * options.tokens)
        self.pos_embed = learned_pos_embed(options.tokens + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        # Channel-major, as published: token j, channel c = output[c * tokens + j].
        out = self.proj(x.to(self.proj.weight.dtype))
        patches = out.view(x.shape[0], -1, self.num_patches).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


FMRI = ModalitySpec(
    name="fmri",
    tokenizer=FMRITokenizer,
    extensions=(".nii", ".nii.gz", ".npy"),
    prompt="Provide a one-sentence caption for the provided fMRI.",
    description="voxel vector through a Linear, reshaped into tokens",
    companions=("roi mask",),
    synthesize="onellm.data.synth.fmri:synthesize",
    preview="onellm.demo.previews:fmri_preview",
)
