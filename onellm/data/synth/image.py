"""Synthetic images: one or two coloured shapes at named positions on a plain background."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import BACKGROUNDS, COLOURS, SHAPES_2D, article, canvas, draw_shape, pick

SIZE = 112
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
    """Write `<id>.png` (112x112 RGB) and describe it; returns manifest fields."""
    count = 1 + int(rng.uniform() < 0.5)
    positions = [pick(rng, tuple(POSITIONS))] if count == 1 else list(rng.choice(EDGES, size=2, replace=False))
    colours = list(rng.choice(list(COLOURS), size=count, replace=False))
    shapes = [pick(rng, SHAPES_2D) for _ in range(count)]
    background = pick(rng, tuple(BACKGROUNDS))

    img, draw = canvas(SIZE, background)
    # Radius and jitter are small enough that shapes at two edge positions never touch.
    for shape, colour, position in zip(shapes, colours, positions):
        (fx, fy), _ = POSITIONS[position]
        cx, cy = (np.array([fx, fy]) * SIZE + rng.uniform(-2, 2, size=2)).tolist()
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
        qa[0] = {"question": f"What colour is the shape {POSITIONS[positions[first]][1]}?", "answer": str(colours[first])}
    return {
        "files": [path.name],
        "caption": caption,
        "qa": qa,
        "meta": {
            "background": background,
            "shapes": [{"shape": s, "colour": str(c), "position": str(p)} for s, c, p in zip(shapes, colours, positions)],
        },
    }
