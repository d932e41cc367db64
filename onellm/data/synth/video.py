"""Synthetic videos: one coloured shape moving across a plain background, or growing or
shrinking in place."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from .common import BACKGROUNDS, COLOURS, SHAPES_2D, article, canvas, draw_shape, pick

SIZE, FRAMES, FPS = 64, 16, 8
# motion: (start centre, end centre, start radius factor, end radius factor, caption phrase)
MOTIONS = {
    "left": ((0.78, 0.5), (0.22, 0.5), 1.0, 1.0, "moving to the left"),
    "right": ((0.22, 0.5), (0.78, 0.5), 1.0, 1.0, "moving to the right"),
    "up": ((0.5, 0.78), (0.5, 0.22), 1.0, 1.0, "moving up"),
    "down": ((0.5, 0.22), (0.5, 0.78), 1.0, 1.0, "moving down"),
    "growing": ((0.5, 0.5), (0.5, 0.5), 0.5, 2.2, "growing bigger"),
    "shrinking": ((0.5, 0.5), (0.5, 0.5), 2.2, 0.5, "shrinking"),
}
# MPEG-4 Part 2: every FFmpeg build has it, and unlike libx264 (whose bitstream varied
# from one worker process to another here) it encodes the same frames to the same bytes.
CODEC = "mpeg4"


def _frames(shape: str, colour: str, background: str, motion: str, radius: float, offset: np.ndarray) -> list[np.ndarray]:
    start, end, grow0, grow1, _ = MOTIONS[motion]
    frames = []
    for t in np.linspace(0.0, 1.0, FRAMES):
        centre = (np.array(start) * (1 - t) + np.array(end) * t) * SIZE + offset
        img, draw = canvas(SIZE, background)
        draw_shape(draw, shape, *centre.tolist(), radius * (grow0 * (1 - t) + grow1 * t), COLOURS[colour])
        frames.append(np.asarray(img))
    return frames


def to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 RGB -> [T, H * 3 / 2, W] planar YUV 4:2:0 (BT.601 limited range,
    what decoders assume for untagged small video), chroma averaged over 2x2.
    Integer arithmetic here, rather than FFmpeg's scaler or a float matmul, keeps the bytes
    independent of how a frame happens to be aligned in memory, which SIMD paths are not."""
    t, h, w, _ = rgb.shape
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128

    def half(plane: np.ndarray) -> np.ndarray:
        return ((plane.reshape(t, h // 2, 2, w // 2, 2).sum(axis=(2, 4)) + 2) >> 2).reshape(t, h // 4, w)

    return np.clip(np.concatenate([y, half(u), half(v)], axis=1), 0, 255).astype(np.uint8)


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # slice threads would make the bytes vary
        stream.bit_rate = 800_000  # near-lossless at 64x64, so the named colours survive
        for frame in to_yuv420p(np.stack(frames)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="yuv420p")))
        container.mux(stream.encode())


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.mp4` (64x64, 16 frames at 8 fps) and describe it; returns manifest fields."""
    shape, colour = pick(rng, SHAPES_2D), pick(rng, tuple(COLOURS))
    background, motion = pick(rng, tuple(BACKGROUNDS)), pick(rng, tuple(MOTIONS))
    radius = float(rng.uniform(7, 9))
    offset = rng.uniform(-2, 2, size=2)
    path = out_dir / f"{sample_id}.mp4"
    write_mp4(path, _frames(shape, colour, background, motion, radius, offset), FPS)

    phrase = MOTIONS[motion][4]
    thing = article(f"{colour} {shape}")
    caption = pick(rng, (f"{thing} {phrase}", f"{thing} is {phrase}", f"a video of {thing} {phrase}"))
    if motion in ("growing", "shrinking"):
        how = {"question": "Does the shape grow or shrink?", "answer": "grow" if motion == "growing" else "shrink"}
    else:
        how = {"question": "Which way does the shape move?", "answer": motion}
    qa = [
        {"question": "What colour is the shape?", "answer": colour},
        {"question": "What shape is in the video?", "answer": shape},
        how,
    ]
    return {
        "files": [path.name],
        "caption": caption,
        "qa": qa,
        "meta": {"shape": shape, "colour": colour, "motion": motion, "background": background, "fps": FPS, "frames": FRAMES},
    }
