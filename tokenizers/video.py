"""video: T frames through the encoder's patch conv, encoded separately and averaged.

The published model takes 15 frames: 5 one-second clips spread over the video, the first
frame of each, short side resized with torch's bilinear interpolation, in 3 spatial crops
(frames=15, crops=3, resize="bilinear")."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from onellm.config import EncoderConfig
from onellm.errors import BadInputError, describe
from onellm.modality import ModalitySpec
from onellm.readers import check_pixels

from .image import FrameTokenizer, centre_crop, crop_views, normalize_unit, short_side, unit_tensor

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


def decode_clip_frames(path: Path, clips: int) -> list[Image.Image]:
    """The first frame at or after each clip start. A video with fewer frames than clips (or
    shorter than a second) gives the same frame to several clips."""
    try:
        with av.open(str(path)) as container:
            duration = _duration(path, container)
        with av.open(str(path)) as container:
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


def _duration(path: Path, container: av.container.InputContainer) -> float:
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


def bilinear_short_side(frames: list[Image.Image], size: int) -> torch.Tensor:
    """[T, 3, h, w] in [0, 1], short side `size` (the long side floored), torch bilinear
    without antialiasing: pytorchvideo's ShortSideScale."""
    x = unit_tensor(frames)
    h, w = x.shape[-2:]
    shape = (math.floor(h / w * size), size) if w < h else (size, math.floor(w / h * size))
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=False)


def bicubic_short_side(frames: list[Image.Image], size: int) -> torch.Tensor:
    return unit_tensor([short_side(frame, size) for frame in frames])


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
    paths: list[Path], tokenizer: VideoTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[frames, 3, S, S]: clips x crops, clip-major. With crops=3 (the published setting) the
    crops are fixed in training too; with crops=1 training draws one random resized crop per
    video and evaluation takes the centre crop."""
    o, size = tokenizer.options, tokenizer.encoder_config.image_size
    clips = o.frames // o.crops
    frames = decode_clip_frames(paths[0], clips)
    if o.crops == 1 and train:
        return crop_views(frames, size, train)
    x = RESIZERS[o.resize](frames, size)
    views = three_crops(x, size) if o.crops == 3 else centre_crop(x, size)
    return normalize_unit(views)


VIDEO = ModalitySpec(
    name="video",
    tokenizer=VideoTokenizer,
    load=load_video,
    extensions=(".mp4", ".webm", ".avi", ".mkv", ".mov"),
    prompt="Provide a one-sentence caption for the provided video.",
    description="frames through the encoder's patch conv, averaged over time",
    synthesize="onellm.data.synth.video:synthesize",
    preview="onellm.demo.previews:video_preview",
)
