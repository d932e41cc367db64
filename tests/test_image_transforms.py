"""The image path's preprocessing is torchvision's, and equals the published one written out
by hand: PIL bicubic resize of the short side (long side truncated), centre crop with rounded
offsets, /255, CLIP mean and std; training's crop is RandomResizedCrop under the same seed,
shared by an RGB image and its map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from onellm import OneLLMConfig
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.tokenizers.image import CLIP_MEAN, CLIP_STD

CONFIG = OneLLMConfig.from_preset("tiny")
SIZE = CONFIG.encoder.image_size
# (width, height): square, wide, tall, odd offsets, smaller than the crop (upscaled), tiny.
SIZES = [(SIZE, SIZE), (3 * SIZE + 1, SIZE), (50, 97), (101, 67), (33, 20), (7, 5)]


def load(modality: str, paths: list[Path], train: bool = False) -> torch.Tensor:
    spec = get_modality(modality)
    return spec.load(paths, LoadContext.build(spec.tokenizer, CONFIG.encoder, CONFIG.modalities[modality]), train=train)


def noise_image(path: Path, width: int, height: int, seed: int = 0) -> Image.Image:
    img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    img.save(path)
    return img


def published_eval_view(img: Image.Image, size: int) -> torch.Tensor:
    """OneLLM's image transform, written out without torchvision."""
    w, h = img.size
    short, long = min(w, h), max(w, h)
    resized_long = int(size * long / short)  # truncated, not rounded
    img = img.resize((size, resized_long) if w <= h else (resized_long, size), Image.BICUBIC)
    w, h = img.size
    top, left = round((h - size) / 2), round((w - size) / 2)
    pixels = np.asarray(img, dtype=np.float32)[top : top + size, left : left + size] / 255.0
    x = torch.from_numpy(pixels).permute(2, 0, 1)
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


TORCHVISION_TRAIN = T.Compose(
    [
        T.RandomResizedCrop(SIZE, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ]
)


@pytest.mark.parametrize("width, height", SIZES)
def test_eval_view_is_the_published_preprocessing(tmp_path, width, height):
    path = tmp_path / "x.png"
    img = noise_image(path, width, height)
    torch.testing.assert_close(load("image", [path]), published_eval_view(img, SIZE), rtol=0, atol=1e-6)


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("seed", [0, 3])
def test_train_view_is_random_resized_crop_under_the_same_seed(tmp_path, width, height, seed):
    path = tmp_path / "x.png"
    img = noise_image(path, width, height, seed)
    torch.manual_seed(seed)
    ours = load("image", [path], train=True)
    torch.manual_seed(seed)
    torch.testing.assert_close(ours, TORCHVISION_TRAIN(img), rtol=0, atol=1e-6)


@pytest.mark.parametrize("modality", ["depth", "normal"])
def test_rgb_and_its_map_get_the_same_crop(tmp_path, modality):
    """The same picture as RGB and as an (8-bit, already rendered) map: one crop keeps the two
    frames identical, in evaluation and under a random training crop."""
    rgb = tmp_path / "x.png"
    img = noise_image(rgb, 3 * SIZE // 2, SIZE + 9)
    mapped = tmp_path / f"x.{modality}.png"
    img.save(mapped)
    for train in (False, True):
        torch.manual_seed(5)
        x = load(modality, [mapped, rgb], train=train)
        assert x.shape == (2, 3, SIZE, SIZE) and torch.equal(x[0], x[1])
    torch.manual_seed(5)
    torch.testing.assert_close(x[0], TORCHVISION_TRAIN(img), rtol=0, atol=1e-6)
