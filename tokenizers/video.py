"""video: T frames through the encoder's patch conv, encoded separately and averaged.

The published model takes 15 frames: 5 one-second clips spread over the video, the first
frame of each, short side resized with torch's bilinear interpolation, in 3 spatial crops
(frames=15, crops=3, resize="bilinear").

Also: synthetic videos of a moving shape (`onellm data synth`) and the demo's preview."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from onellm.config import EncoderConfig
from onellm.data.synth.common import BACKGROUNDS, COLOURS, SHAPES_2D, article, canvas, draw_shape, pick
from onellm.errors import BadInputError, describe
from onellm.modality import LoadContext, ModalitySpec
from onellm.readers import check_pixels
from onellm.sources import FileSource, readable

from .image import CLIP_MEAN, CLIP_STD, FrameTokenizer, crop_views

CLIP_SECONDS = 1.0


@dataclass
class VideoOptions:
    frames: int = 15
    # 1: one view per clip (centre crop, or a random resized crop when training);
    # 3: left/top, centre and right/bottom crops along the long side, as published.
    crops: int = 1
    # Short-side resize of evaluation views: "bilinear" is torch's interpolation without
    # antialiasing on [0, 1] floats, as the published video path (pytorchvideo's
    # ShortSideScale); "bicubic" is PIL's antialiased resize of the image path, kinder to
    # large frames. Training's random resized crop (crops=1) is always bicubic.
    resize: str = "bilinear"


class VideoTokenizer(FrameTokenizer):
    Options = VideoOptions

    def __init__(self, encoder: EncoderConfig, options: VideoOptions) -> None:
        if options.crops not in (1, 3) or options.frames % options.crops:
            raise ValueError(f"video crops must be 1 or 3 and divide frames ({options.frames}), got {options.crops}")
        if options.resize not in RESIZERS:
            raise ValueError(f"video resize must be one of {sorted(RESIZERS)}, got {options.resize!r}")
        super().__init__(encoder, options)


def clip_start_times(duration: float, clips: int) -> np.ndarray:
    """Clip i of `clips` one-second clips starts at i * (duration - 1 s) / clips, the rule of
    pytorchvideo 0.1.5's ConstantClipsPerVideoSampler that the published model was trained
    with: it divides by the clip count, so the last clip ends before the video does."""
    return np.arange(clips) * max(duration - CLIP_SECONDS, 0.0) / clips


def decode_clip_frames(path: FileSource, clips: int) -> list[Image.Image]:
    """The first frame at or after each clip start. A video with fewer frames than clips (or
    shorter than a second) gives the same frame to several clips."""
    try:
        with av.open(readable(path)) as container:
            duration = _duration(path, container)
        with av.open(readable(path)) as container:
            stream = container.streams.video[0]
            if stream.codec_context.width and stream.codec_context.height:  # 0 when only decoding tells
                check_pixels(path, stream.codec_context.width, stream.codec_context.height)
            stream.thread_type = "AUTO"
            frames = _first_frames_from(container.decode(stream), clip_start_times(duration, clips), stream)
    except BadInputError:
        raise
    except Exception as err:  # FFmpeg's errors and whatever a damaged container makes PyAV raise
        raise BadInputError(path, f"not a decodable video ({describe(err)})") from err
    if not frames:
        raise BadInputError(path, "no decodable video frames")
    return [frame.to_image() for frame in frames]


def _duration(path: FileSource, container: av.container.InputContainer) -> float:
    """Seconds, from the stream or container header, else from the packet timestamps."""
    if not container.streams.video:
        raise BadInputError(path, "no video stream")
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    stamps = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.pts is not None]
    if not stamps or stream.time_base is None:
        return 0.0
    first = min(pts for pts, _ in stamps)
    return float(max(pts + d for pts, d in stamps) - first) * float(stream.time_base)


def _first_frames_from(
    decoded: Iterable[av.VideoFrame], starts: np.ndarray, stream: av.video.VideoStream
) -> list[av.VideoFrame]:
    """For each start time (seconds from the first frame), the first frame at or after it;
    starts past the last frame get the last frame. Only the picked frames are kept."""
    rate = float(stream.average_rate or 25)
    picks: list[av.VideoFrame] = []
    origin, frame = None, None
    for index, frame in enumerate(decoded):
        t = frame.time if frame.time is not None else index / rate
        origin = t if origin is None else origin
        # A little slack for timestamps rounded to the container's time base.
        while len(picks) < len(starts) and t - origin >= starts[len(picks)] - 1e-6:
            picks.append(frame)
        if len(picks) == len(starts):
            break
    if frame is None:
        return []
    return picks + [frame] * (len(starts) - len(picks))


def unit_tensor(frames: list[Image.Image]) -> torch.Tensor:
    """Same-size RGB frames -> [T, 3, H, W] floats in [0, 1]."""
    return torch.stack([TF.to_tensor(frame) for frame in frames])


def bilinear_short_side(frames: list[Image.Image], size: int) -> torch.Tensor:
    """[T, 3, h, w] in [0, 1], short side `size` (the long side floored), torch bilinear
    without antialiasing: pytorchvideo's ShortSideScale."""
    x = unit_tensor(frames)
    h, w = x.shape[-2:]
    shape = (math.floor(h / w * size), size) if w < h else (size, math.floor(w / h * size))
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=False)


def bicubic_short_side(frames: list[Image.Image], size: int) -> torch.Tensor:
    """The image path's resize: PIL bicubic (antialiased), the long side truncated."""
    return unit_tensor([TF.resize(frame, size, TF.InterpolationMode.BICUBIC) for frame in frames])


RESIZERS = {"bilinear": bilinear_short_side, "bicubic": bicubic_short_side}


def three_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """[T, C, h, w] with short side `size` -> [T * 3, C, size, size], each frame's crops at the
    start, centre (offset rounded up) and end of its long side."""
    h, w = x.shape[-2:]
    extra = max(w, h) - size
    offsets = (0, math.ceil(extra / 2), extra)
    if w >= h:
        crops = [x[..., :size, o : o + size] for o in offsets]
    else:
        crops = [x[..., o : o + size, :size] for o in offsets]
    return torch.stack(crops, dim=1).flatten(0, 1)


def load_video(
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[frames, 3, S, S]: clips x crops, clip-major. With crops=3 (the published setting) the
    crops are fixed in training too; with crops=1 training draws one random resized crop per
    video and evaluation takes the centre crop."""
    o, size = ctx.options, ctx.encoder.image_size
    clips = o.frames // o.crops
    frames = decode_clip_frames(paths[0], clips)
    if o.crops == 1 and train:
        return crop_views(frames, size, train)
    x = RESIZERS[o.resize](frames, size)
    views = three_crops(x, size) if o.crops == 3 else TF.center_crop(x, [size, size])
    return TF.normalize(views, CLIP_MEAN, CLIP_STD)


# ---- synthetic samples (`onellm data synth`): a shape moving, growing or shrinking --------

SYNTH_SIZE, SYNTH_FRAMES, SYNTH_FPS = 64, 16, 8
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


def _frames(
    shape: str, colour: str, background: str, motion: str, radius: float, offset: np.ndarray
) -> list[np.ndarray]:
    start, end, grow0, grow1, _ = MOTIONS[motion]
    frames = []
    for t in np.linspace(0.0, 1.0, SYNTH_FRAMES):
        centre = (np.array(start) * (1 - t) + np.array(end) * t) * SYNTH_SIZE + offset
        img, draw = canvas(SYNTH_SIZE, background)
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


def write_mp4(path: Path, frames: list[np.ndarray], fps: int, sound: tuple[np.ndarray, int] | None = None) -> None:
    """An MPEG-4 video of `frames`, with `sound` (mono float samples in [-1, 1], sample rate)
    as its AAC soundtrack when given."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # slice threads would make the bytes vary
        stream.bit_rate = 800_000  # near-lossless at 64x64, so the named colours survive
        if sound is not None:  # every stream before the first packet: the header lists them
            wave, rate = sound
            audio = container.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for frame in to_yuv420p(np.stack(frames)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="yuv420p")))
        container.mux(stream.encode())
        if sound is not None:
            chunk = 1024  # AAC's frame size
            samples = wave.astype(np.float32)
            for start in range(0, len(samples), chunk):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.mp4` (64x64, 16 frames at 8 fps): one coloured shape moving across a plain
    background, or growing or shrinking in place; returns manifest fields."""
    shape, colour = pick(rng, SHAPES_2D), pick(rng, tuple(COLOURS))
    background, motion = pick(rng, tuple(BACKGROUNDS)), pick(rng, tuple(MOTIONS))
    radius = float(rng.uniform(7, 9))
    offset = rng.uniform(-2, 2, size=2)
    path = out_dir / f"{sample_id}.mp4"
    write_mp4(path, _frames(shape, colour, background, motion, radius, offset), SYNTH_FPS)

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
        "meta": {
            "shape": shape,
            "colour": colour,
            "motion": motion,
            "background": background,
            "fps": SYNTH_FPS,
            "frames": SYNTH_FRAMES,
        },
    }


# ---- demo preview -------------------------------------------------------------------------


def preview(paths: list[Path]) -> Path:
    """The file itself, for the browser's video player."""
    return Path(paths[0])


VIDEO = ModalitySpec(
    name="video",
    tokenizer=VideoTokenizer,
    load=load_video,
    extensions=(".mp4", ".webm", ".avi", ".mkv", ".mov"),
    prompt="Provide a one-sentence caption for the provided video.",
    description="frames through the encoder's patch conv, averaged over time",
    synthesize=synthesize,
    preview=preview,
    streams=("audio",),
    openai_parts=("video_url",),
)
