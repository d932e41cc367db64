"""image: the encoder's own 14x14 patch conv and positional table (nothing of its own); the
published torchvision preprocessing; synthetic shape pictures; the demo's preview.

Also hosts what depth, normal and video share: the frame tokenizer and the cropped views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageSequence

from onellm.config import EncoderConfig
from onellm.data.synth.common import BACKGROUNDS, COLOURS, SHAPES_2D, article, canvas, draw_shape, pick
from onellm.modality import LoadContext, ModalitySpec, ModalityTokenizer, TokenGrid
from onellm.readers import open_image
from onellm.sources import FileSource

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


def open_rgb(path: FileSource) -> Image.Image:
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
            white = Image.new("RGBA", frame.size, (255, 255, 255, 255))
            frame = Image.alpha_composite(white, frame)
        return frame.convert("RGB")


# PIL image -> [3, H, W] in [0, 1] -> CLIP's normalisation.
TO_MODEL = T.Compose([T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])


def eval_transform(size: int) -> T.Compose:
    """The published evaluation view: short side to `size` (bicubic, antialiased; the long
    side truncated), centre crop, [0, 1], CLIP's mean and std."""
    return T.Compose([T.Resize(size, T.InterpolationMode.BICUBIC, antialias=True), T.CenterCrop(size), TO_MODEL])


def train_crop(size: int) -> T.RandomResizedCrop:
    """The published training view's crop: area 90-100%, aspect ratio 3/4-4/3, bicubic."""
    return T.RandomResizedCrop(size, TRAIN_SCALE, TRAIN_RATIO, T.InterpolationMode.BICUBIC, antialias=True)


def crop_views(images: list[Image.Image], size: int, train: bool = False) -> torch.Tensor:
    """[len(images), 3, size, size], CLIP-normalised. Every image gets the SAME crop, so an RGB
    image and its map (resized to one size first) stay pixel-aligned, and video frames share one
    view: torchvision's transforms, with the random crop's parameters drawn once (from torch's
    global RNG, as RandomResizedCrop itself draws them) and applied to each image."""
    if not train:
        view = eval_transform(size)
        return torch.stack([view(im) for im in images])
    crop = train_crop(size)
    box = crop.get_params(images[0], crop.scale, crop.ratio)
    return torch.stack(
        [TO_MODEL(TF.resized_crop(im, *box, crop.size, crop.interpolation, antialias=crop.antialias)) for im in images]
    )


def load_image(
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    return crop_views([open_rgb(paths[0])], ctx.encoder.image_size, train)[0]


# ---- synthetic samples (`onellm data synth`): coloured shapes at named positions --------

SYNTH_SIZE = 112
# name: (centre as a fraction of the side, phrase used in captions)
POSITIONS = {
    "left": ((0.25, 0.5), "on the left"),
    "right": ((0.75, 0.5), "on the right"),
    "top": ((0.5, 0.25), "at the top"),
    "bottom": ((0.5, 0.75), "at the bottom"),
    "centre": ((0.5, 0.5), "in the centre"),
}
# The centre overlaps every other position, so it is only used for a single shape.
EDGES = ("left", "right", "top", "bottom")
COUNT_WORDS = {1: "one", 2: "two"}


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.png` (112x112 RGB): one or two coloured shapes on a plain background,
    and describe it; returns manifest fields."""
    count = 1 + int(rng.uniform() < 0.5)
    positions = [pick(rng, tuple(POSITIONS))] if count == 1 else list(rng.choice(EDGES, size=2, replace=False))
    colours = list(rng.choice(list(COLOURS), size=count, replace=False))
    shapes = [pick(rng, SHAPES_2D) for _ in range(count)]
    background = pick(rng, tuple(BACKGROUNDS))

    img, draw = canvas(SYNTH_SIZE, background)
    # Radius and jitter are small enough that shapes at two edge positions never touch.
    for shape, colour, position in zip(shapes, colours, positions):
        (fx, fy), _ = POSITIONS[position]
        cx, cy = (np.array([fx, fy]) * SYNTH_SIZE + rng.uniform(-2, 2, size=2)).tolist()
        draw_shape(draw, shape, cx, cy, float(rng.uniform(13, 16)), COLOURS[colour])
    path = out_dir / f"{sample_id}.png"
    img.save(path)

    parts = [f"{article(f'{c} {s}')} {POSITIONS[p][1]}" for s, c, p in zip(shapes, colours, positions)]
    described = " and ".join(parts)
    caption = pick(rng, (described, f"{described} on a {background} background", f"a picture of {described}"))
    first = 0 if count == 1 else int(rng.integers(count))
    qa = [
        {"question": f"What colour is the {shapes[first]}?", "answer": str(colours[first])},
        {"question": f"What shape is {POSITIONS[positions[first]][1]}?", "answer": str(shapes[first])},
        {"question": "How many shapes are there?", "answer": COUNT_WORDS[count]},
    ]
    if shapes.count(shapes[first]) > 1:  # "the star" would be ambiguous
        qa[0] = {
            "question": f"What colour is the shape {POSITIONS[positions[first]][1]}?",
            "answer": str(colours[first]),
        }
    return {
        "files": [path.name],
        "caption": caption,
        "qa": qa,
        "meta": {
            "background": background,
            "shapes": [
                {"shape": s, "colour": str(c), "position": str(p)} for s, c, p in zip(shapes, colours, positions)
            ],
        },
    }


# ---- demo preview -------------------------------------------------------------------------


def preview(paths: list[Path]) -> Image.Image:
    """The image as the loader reads it, as RGB: browsers show no TIFF or 16-bit PNG."""
    return open_rgb(Path(paths[0]))


IMAGE = ModalitySpec(
    name="image",
    tokenizer=ImageTokenizer,
    load=load_image,
    extensions=(".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"),
    prompt="Provide a one-sentence caption for the provided image.",
    description="RGB image through the encoder's patch conv",
    synthesize=synthesize,
    preview=preview,
    openai_parts=("image_url",),
)
