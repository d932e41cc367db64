"""image: the encoder's own 14x14 patch conv and positional table (nothing of its own)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid
from onellm.readers import open_image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TRAIN_SCALE = (0.9, 1.0)
TRAIN_RATIO = (3 / 4, 4 / 3)


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
    """Any PIL mode (L, LA, P, RGBA, CMYK, 16-bit, float) and the first frame of animations -> RGB.
    Transparent areas become white; 16-bit and float images are scaled by their maximum."""
    with open_image(path) as img:
        frame = next(iter(ImageSequence.Iterator(img)))
        frame.load()
        if frame.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(frame, dtype=np.float32)
            frame = Image.fromarray((arr / max(float(arr.max()), 1.0) * 255).astype(np.uint8))
        if frame.mode in ("RGBA", "LA", "P", "PA"):
            frame = frame.convert("RGBA")
            canvas = Image.new("RGBA", frame.size, (255, 255, 255, 255))
            frame = Image.alpha_composite(canvas, frame)
        return frame.convert("RGB")


def unit_tensor(images: list[Image.Image]) -> torch.Tensor:
    """Same-size RGB images -> [len(images), 3, H, W] floats in [0, 1]."""
    return torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).float() / 255.0


def normalize_unit(x: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] in [0, 1] -> CLIP's normalisation."""
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """[..., H, W] -> [..., size, size], offsets rounded as torchvision's CenterCrop."""
    h, w = x.shape[-2:]
    top, left = round((h - size) / 2), round((w - size) / 2)
    return x[..., top : top + size, left : left + size]


def short_side(img: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so the short side is `size` (the long side truncated, as torchvision's Resize)."""
    w, h = img.size
    scale = size / min(w, h)
    return img.resize((size if w <= h else int(w * scale), size if h <= w else int(h * scale)), Image.BICUBIC)


def random_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a random resized crop: area fraction uniform in TRAIN_SCALE and
    aspect ratio log-uniform in TRAIN_RATIO, from torch's global RNG; after 10 misses, the
    largest centred box whose ratio is in range."""
    log_ratio = (math.log(TRAIN_RATIO[0]), math.log(TRAIN_RATIO[1]))
    for _ in range(10):
        u = torch.rand(2).tolist()
        area = width * height * (TRAIN_SCALE[0] + (TRAIN_SCALE[1] - TRAIN_SCALE[0]) * u[0])
        ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = (int(torch.randint(n + 1, ())) for n in (width - w, height - h))
            return left, top, w, h
    ratio = min(max(width / height, TRAIN_RATIO[0]), TRAIN_RATIO[1])
    w, h = min(width, round(height * ratio)), min(height, round(width / ratio))
    return (width - w) // 2, (height - h) // 2, w, h


def crop_views(images: list[Image.Image], size: int, train: bool = False) -> torch.Tensor:
    """[len(images), 3, size, size], CLIP-normalised. Every image gets the SAME crop, so an RGB
    image and its map (resized to one size first) stay pixel-aligned, and video frames share one
    view. Eval: short side to `size` (bicubic) + centre crop; train: a random resized crop
    (scale 0.9-1.0, ratio 3/4-4/3, bicubic), as the published recipe."""
    if train:
        left, top, w, h = random_crop_box(*images[0].size)
        box = (left, top, left + w, top + h)
        images = [im.crop(box).resize((size, size), Image.BICUBIC) for im in images]
        return normalize_unit(unit_tensor(images))
    return normalize_unit(centre_crop(unit_tensor([short_side(im, size) for im in images]), size))


def load_image(
    paths: list[Path], tokenizer: ModalityTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return crop_views([open_rgb(paths[0])], tokenizer.encoder_config.image_size, train)[0]


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
