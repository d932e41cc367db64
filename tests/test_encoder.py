"""The shared encoder: CLIP math with the post-norm on every token, local checkpoints."""

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from onellm.config import EncoderConfig
from onellm.model.encoder import SharedEncoder


def _clip(tmp_path):
    torch.manual_seed(0)
    hf = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=56,
            patch_size=14,
            hidden_act="quick_gelu",
        )
    )
    hf.save_pretrained(tmp_path / "clip")
    return hf.eval()


def test_loads_local_clip_and_matches_its_forward(tmp_path):
    hf = _clip(tmp_path)
    enc = SharedEncoder(
        EncoderConfig(width=64, layers=2, heads=4, image_size=56, patch_size=14, pretrained=str(tmp_path / "clip"))
    ).eval()
    pixels = torch.randn(2, 3, 56, 56)
    ours = enc(enc.patch_embed(pixels), enc.image_pos_embed)
    hidden = hf(pixel_values=pixels).last_hidden_state  # before CLIP's pooled-only post norm
    # OneLLM normalises every token, where CLIP's pooler normalises the class token only.
    torch.testing.assert_close(ours, hf.post_layernorm(hidden), atol=1e-5, rtol=1e-5)


def test_checkpoint_with_other_shapes_is_refused(tmp_path):
    _clip(tmp_path)
    with pytest.raises(ValueError, match="the config asks for 64, 3, 14"):
        SharedEncoder(
            EncoderConfig(width=64, layers=3, heads=4, image_size=56, patch_size=14, pretrained=str(tmp_path / "clip"))
        )
