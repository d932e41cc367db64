"""video: T frames through the encoder's patch conv, encoded separately and averaged.

The published model takes 15 frames (5 one-second clips x 3 spatial crops)."""
from __future__ import annotations

from dataclasses import dataclass

from onellm.modality import ModalitySpec

from .image import FrameTokenizer


@dataclass
class VideoOptions:
    frames: int = 15


class VideoTokenizer(FrameTokenizer):
    Options = VideoOptions


VIDEO = ModalitySpec(
    name="video",
    tokenizer=VideoTokenizer,
    extensions=(".mp4", ".webm", ".avi", ".mkv", ".mov"),
    prompt="Provide a one-sentence caption for the provided video.",
    description="frames through the encoder's patch conv, averaged over time",
    synthesize="onellm.data.synth.video:synthesize",
    preview="onellm.demo.previews:video_preview",
)
