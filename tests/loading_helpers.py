"""What the loader tests share: the tiny preset's tokenizers and load contexts, and a
loader call that checks the shape and dtype every model input must have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from onellm import OneLLMConfig
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.tokenizers.image import CLIP_MEAN, CLIP_STD

CONFIG = OneLLMConfig.from_preset("tiny")
SIZE = CONFIG.encoder.image_size


def tokenizer(modality: str, **overrides):
    options = {**CONFIG.modalities[modality], **overrides}
    return get_modality(modality).tokenizer.from_options(CONFIG.encoder, options)


def context(modality: str, **overrides) -> LoadContext:
    """What a loader gets: the tokenizer's options, the encoder config, the input shape."""
    return LoadContext.build(
        get_modality(modality).tokenizer, CONFIG.encoder, {**CONFIG.modalities[modality], **overrides}
    )


def load(modality: str, paths: list[Path], train: bool = False, meta: dict | None = None, **overrides):
    ctx = context(modality, **overrides)
    x = get_modality(modality).load(paths, ctx, train=train, meta=meta)
    assert tuple(x.shape) == ctx.input_shape
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    return x


def seeded(fn, seed: int):
    torch.manual_seed(seed)
    return fn()


def clip_value(rgb: tuple[int, int, int]) -> torch.Tensor:
    return (torch.tensor(rgb) / 255.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)


def gradient_image(width: int, height: int) -> Image.Image:
    """Left-to-right red ramp, top-to-bottom green ramp: any crop is visible in the values."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8))
