"""image: the encoder's own 14x14 patch conv and positional table (nothing of its own)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class FrameOptions:
    frames: int = 1


class FrameTokenizer(ModalityTokenizer):
    """Frames [B, T, 3, S, S] through the encoder's patch conv; the model averages the T
    encoded frames (video clips, or an RGB image with its depth or normal map)."""

    Options = FrameOptions

    def __init__(self, encoder: EncoderConfig, options: FrameOptions) -> None:
        super().__init__(encoder, options)
        if options.frames < 1:
            raise ValueError(f"frames must be >= 1, got {options.frames}")
        self.input_shape = (options.frames, 3, encoder.image_size, encoder.image_size)
        self.num_patches = encoder.num_patches

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        b, t = x.shape[:2]
        patches = encoder.patch_embed(x.flatten(0, 1).to(encoder.image_pos_embed.dtype))
        return TokenGrid(patches.unflatten(0, (b, t)), encoder.image_pos_embed)


class ImageTokenizer(FrameTokenizer):
    """A single image [B, 3, S, S]."""

    def __init__(self, encoder: EncoderConfig, options: FrameOptions) -> None:
        if options.frames != 1:
            raise ValueError("an image is one frame; use the video modality for several")
        super().__init__(encoder, options)
        self.input_shape = self.input_shape[1:]

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        return super().tokenize(x.unsqueeze(1), encoder)


def open_rgb(path: Path) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, 16-bit) and the first frame of animations -> RGB."""
    try:
        with Image.open(path) as img:
            frame = next(iter(ImageSequence.Iterator(img)))
            if frame.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(frame, dtype=np.float32)
                frame = Image.fromarray((arr / max(float(arr.max()), 1.0) * 255).astype(np.uint8))
            if frame.mode in ("RGBA", "LA", "P"):
                frame = frame.convert("RGBA")
                canvas = Image.new("RGBA", frame.size, (255, 255, 255, 255))
                frame = Image.alpha_composite(canvas, frame)
            return frame.convert("RGB")
    except (OSError, ValueError, StopIteration) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def to_model_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """Evaluation transform: short side to `size` (bicubic), centre crop, CLIP normalisation."""
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3)
    x = x.permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (x - mean) / std


def load_image(path: Path, tokenizer: ModalityTokenizer) -> torch.Tensor:
    return to_model_tensor(open_rgb(path), tokenizer.encoder_config.image_size)


IMAGE = ModalitySpec(
    name="image",
    tokenizer=ImageTokenizer,
    load=load_image,
    extensions=(".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"),
    prompt="Provide a one-sentence caption for the provided image.",
    description="RGB image through the encoder's patch conv",
    synthesize="onellm.data.synth.image:synthesize",
    preview="onellm.demo.previews:image_preview",
)
