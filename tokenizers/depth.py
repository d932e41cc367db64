"""depth: the RGB image and its depth map (rendered as 3 channels) as two frames."""
from __future__ import annotations

from dataclasses import dataclass

from onellm.config import EncoderConfig
from onellm.modality import ModalitySpec

from .image import FrameTokenizer


@dataclass
class PairOptions:
    """No options: an RGB image and its map are always exactly two frames."""


class ImageMapPairTokenizer(FrameTokenizer):
    Options = PairOptions

    def __init__(self, encoder: EncoderConfig, options: PairOptions) -> None:
        super().__init__(encoder, FrameTokenizer.Options(frames=2))
        self.options = options


DEPTH = ModalitySpec(
    name="depth",
    tokenizer=ImageMapPairTokenizer,
    prompt="Provide a one-sentence caption for the provided depth map.",
    official_name="rgbd",
    description="RGB image + depth map as two frames through the encoder's patch conv",
    companions=("rgb image",),
    synthesize="onellm.data.synth.depth:synthesize",
    preview="onellm.demo.previews:depth_preview",
)
