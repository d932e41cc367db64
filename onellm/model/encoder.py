"""The shared CLIP-style ViT that every modality passes through."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from ..config import EncoderConfig


class SharedEncoder(nn.Module):
    """A CLIP ViT trunk that takes patch tokens (not pixels) plus a positional table.

    Modality tokenizers make the patch tokens; image-like ones borrow `patch_embed` and
    `image_pos_embed`, the others bring their own table sized to their token grid.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = _build_clip(config)

    @property
    def width(self) -> int:
        return self.config.width

    def patch_embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, width] through the encoder's own patch conv."""
        return self.vit.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)

    @property
    def image_pos_embed(self) -> torch.Tensor:
        return self.vit.embeddings.position_embedding.weight

    def forward(self, patches: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
        """patches [B, N, width], pos_embed [N + 1, width] -> features [B, N + 1, width]."""
        if pos_embed.shape[0] != patches.shape[1] + 1:
            raise ValueError(
                f"positional table has {pos_embed.shape[0]} rows for {patches.shape[1]} patches + class token"
            )
        cls = self.vit.embeddings.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        x = torch.cat([cls, patches], dim=1) + pos_embed.to(patches.dtype)
        x = self.vit.pre_layrnorm(x)
        x = self.vit.encoder(inputs_embeds=x).last_hidden_state
        # OneLLM normalises every token, where CLIP's pooler normalises only the class token.
        return self.vit.post_layernorm(x)


def _build_clip(config: EncoderConfig) -> CLIPVisionModel:
    if config.pretrained:
        path = Path(config.pretrained).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"encoder.pretrained={config.pretrained!r}: no Hugging Face CLIP checkpoint there "
                "(expected config.json and weights); nothing is downloaded, give a local directory"
            )
        model = CLIPVisionModel.from_pretrained(path)
        got = model.config
        if (got.hidden_size, got.num_hidden_layers, got.patch_size) != (config.width, config.layers, config.patch_size):
            raise ValueError(
                f"{path}: CLIP has width {got.hidden_size}, {got.num_hidden_layers} layers, patch {got.patch_size}; "
                f"the config asks for {config.width}, {config.layers}, {config.patch_size}"
            )
        return model
    hf = CLIPVisionConfig(
        hidden_size=config.width,
        intermediate_size=int(config.width * config.mlp_ratio),
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        layer_norm_eps=config.layer_norm_eps,
        hidden_act=config.hidden_act,
    )
    return CLIPVisionModel(hf)
