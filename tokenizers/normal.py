"""normal: the RGB image and its surface-normal map as two frames."""
from __future__ import annotations

from onellm.modality import ModalitySpec

from .depth import ImageMapPairTokenizer

NORMAL = ModalitySpec(
    name="normal",
    tokenizer=ImageMapPairTokenizer,
    prompt="Provide a one-sentence caption for the provided normal map.",
    official_name="rgbn",
    description="RGB image + normal map as two frames through the encoder's patch conv",
    companions=("rgb image",),
    synthesize="onellm.data.synth.normal:synthesize",
    preview="onellm.demo.previews:normal_preview",
)
