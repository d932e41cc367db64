"""video: T frames through the encoder's patch conv, encoded separately and averaged.

The published model takes 15 frames: 5 one-second clips spread uniformly over the video,
the first frame of each, in 3 spatial crops (frames=15, crops=3)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import torch
from PIL import Image

from onellm.config import EncoderConfig
from onellm.errors import BadInputError, describe
from onellm.modality import ModalitySpec
from onellm.readers import check_pixels

from .image import FrameTokenizer, clip_normalize, crop_views, short_side

CLIP_SECONDS = 1.0


@dataclass
class VideoOptions:
    frames: int = 15
    # 1: one view per clip (centre crop, or a random resized crop when training);
    # 3: left/top, centre and right/bottom crops along the long side, as published.
    crops: int = 1


class VideoTokenizer(FrameTokenizer):
    Options = VideoOptions

    def __init__(self, encoder: EncoderConfig, options: VideoOptions) -> None:
        if options.crops not in (1, 3) or options.frames % options.crops:
            raise ValueError(f"video crops must be 1 or 3 and divide frames ({options.frames}), got {options.crops}")
        super().__init__(encoder, options)


def clip_start_times(duration: float, clips: int) -> np.ndarray:
    """Starts of `clips` one-second clips spread evenly over the video (pytorchvideo's
    constant-clips-per-video rule): the last clip ends at the end of the video."""
    return np.linspace(0.0, max(duration - CLIP_SECONDS, 0.0), clips)


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


def three_crops(img: Image.Image, size: int) -> list[Image.Image]:
    """Short side to `size`, then crops at the start, centre and end of the long side."""
    img = short_side(img, size)
    w, h = img.size
    extra = max(w, h) - size
    offsets = (0, math.ceil(extra / 2), extra)
    if w >= h:
        return [img.crop((o, 0, o + size, size)) for o in offsets]
    return [img.crop((0, o, size, o + size)) for o in offsets]


def load_video(
    paths: list[Path], tokenizer: VideoTokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[frames, 3, S, S]: clips x crops, clip-major. With crops=3 (the published setting) the
    crops are fixed in training too; with crops=1 training draws one random resized crop per video."""
    o, size = tokenizer.options, tokenizer.encoder_config.image_size
    clips = o.frames // o.crops
    frames = decode_clip_frames(paths[0], clips)
    if o.crops == 1:
        return crop_views(frames, size, train)
    return clip_normalize([crop for frame in frames for crop in three_crops(frame, size)])


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
