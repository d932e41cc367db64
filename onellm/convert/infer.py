"""Model sizes and tokenizer options read from the tensors' shapes of an official checkpoint.

Head counts are not visible in shapes. The defaults are those of the 7B release: 32 LLaMA
heads at width 4096, 16 CLIP and 16 UPM heads at width 1024; a checkpoint of any other width
must pass its own (a wrong count converts without error into wrong logits). Options that
shapes cannot tell (mel bins, strides, video frames and resize, points per cloud, sampling
columns, IMU resample padding) come from the onellm-7b preset, which holds the published
preprocessing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from ..config import EncoderConfig, LLMConfig, OneLLMConfig, UPMConfig
from ..errors import BadInputError
from .official import Layout, official_names

PRESET = "onellm-7b"
LLM_WIDTH, LLM_HEAD_DIM = 4096, 128
CLIP_WIDTH, CLIP_HEAD_DIM = 1024, 64
UPM_HEAD_DIM = 64

Shapes = dict[str, tuple[int, ...]]


def _count(shapes: Shapes, pattern: str) -> int:
    found = {int(m.group(1)) for key in shapes if (m := re.fullmatch(pattern, key))}
    return max(found) + 1 if found else 0


def _need(shapes: Shapes, key: str, source: str) -> tuple[int, ...]:
    if key not in shapes:
        raise BadInputError(source, f"has no {key!r}: cannot tell the model's size")
    return shapes[key]


def _heads(width: int, given: int | None, release: int, head_dim: int, what: str, source: str) -> int:
    """The given head count, or the release's head dim at the release's width. At any other
    width a guess would convert without error into wrong logits, so it is refused."""
    flag = f"--{what.lower()}-heads"
    if given is None and width != release:
        raise BadInputError(
            source,
            f"{what} width {width} is not the 7B release's {release}, and head counts "
            f"cannot be read from the weights: pass {flag}",
        )
    heads = given or width // head_dim
    if width % heads:
        raise BadInputError(source, f"{what} width {width} is not divisible by {heads} heads; pass {flag}")
    return heads


def infer_layout(
    shapes: Shapes,
    source: str,
    llm_heads: int | None = None,
    clip_heads: int | None = None,
    upm_heads: int | None = None,
) -> tuple[Layout, OneLLMConfig]:
    """`shapes`: official keys (without `llma.`) -> shape. Returns the rule layout and the
    OneLLMConfig of the converted model (its LLM a random_init stand-in until written)."""
    vocab, d = _need(shapes, "tok_embeddings.weight", source)
    ffn = _need(shapes, "layers.0.feed_forward.w1.weight", source)[0]
    conv = _need(shapes, "clip.visual.conv1.weight", source)
    w, patch = conv[0], conv[-1]
    grid = math.isqrt(_need(shapes, "clip.visual.positional_embedding", source)[0] - 1)
    mlp = _need(shapes, "clip.visual.transformer.resblocks.0.mlp.c_fc.weight", source)[0]
    upm_hidden = _need(shapes, "resample_layers.0.0.feed_forward.w1.weight", source)[0]

    names = official_names()
    present = [m.split(".")[1] for m in shapes if re.fullmatch(r"clip_proj1\.[^.]+\.0\.weight", m)]
    modalities = {m: names[m] for m in present if m in names}
    if not modalities:
        raise BadInputError(source, f"holds no modality this installation knows (found {present})")
    queries = _need(shapes, f"resample_tokens.{next(iter(modalities))}", source)[1]

    layout = Layout(
        llm_layers=_count(shapes, r"layers\.(\d+)\..*"),
        llm_heads=_heads(d, llm_heads, LLM_WIDTH, LLM_HEAD_DIM, "LLM", source),
        clip_layers=_count(shapes, r"clip\.visual\.transformer\.resblocks\.(\d+)\..*"),
        num_experts=_count(shapes, r"resample_layers\.(\d+)\..*"),
        upm_layers=_count(shapes, r"resample_layers\.\d+\.(\d+)\..*"),
        modalities=modalities,
    )
    encoder = EncoderConfig(
        width=w,
        layers=layout.clip_layers,
        heads=_heads(w, clip_heads, CLIP_WIDTH, CLIP_HEAD_DIM, "CLIP", source),
        mlp_ratio=mlp / w,
        image_size=grid * patch,
        patch_size=patch,
    )
    upm = UPMConfig(
        num_experts=layout.num_experts,
        layers_per_expert=layout.upm_layers,
        num_queries=queries,
        heads=_heads(w, upm_heads, CLIP_WIDTH, UPM_HEAD_DIM, "UPM", source),
        ffn_multiple_of=_multiple_of(w, upm_hidden, source),
    )
    preset = OneLLMConfig.from_preset(PRESET)
    # What the weights' shapes do not tell (context length, norm epsilon, RoPE base) is the preset's.
    llm = LLMConfig(
        text_tokenizer="bytes",
        random_init={
            **preset.llm.random_init,
            "vocab_size": vocab,
            "hidden_size": d,
            "intermediate_size": ffn,
            "num_hidden_layers": layout.llm_layers,
            "num_attention_heads": layout.llm_heads,
            "num_key_value_heads": layout.llm_heads,
        },
    )
    options = {
        ours: _options(ours, theirs, preset.modalities.get(ours, {}), shapes, w, source)
        for theirs, ours in modalities.items()
    }
    return layout, OneLLMConfig(encoder=encoder, upm=upm, llm=llm, modalities=options, prompt_template="onellm")


def _multiple_of(width: int, hidden: int, source: str) -> int:
    """The SwiGLU rounding that gives `hidden`: LLaMA's 256 when it fits, else hidden itself."""
    for multiple in (256, hidden):
        if UPMConfig(ffn_multiple_of=multiple).ffn_hidden(width) == hidden:
            return multiple
    raise BadInputError(source, f"UPM feed-forward width {hidden} is below LLaMA's 8/3 x {width} sizing")


def _audio(o: dict[str, Any], shapes: Shapes, w: int, source: str) -> dict[str, Any]:
    kernel = shapes["conv1.audio.weight"][-1]
    patches = shapes["positional_embedding.audio"][0] - 1
    mel_rows = (o["mel_bins"] - kernel) // o["stride"] + 1
    if mel_rows < 1 or patches % mel_rows:
        raise BadInputError(source, f"{patches} audio patches do not tile {o['mel_bins']} mel bins")
    frames = (patches // mel_rows - 1) * o["stride"] + kernel
    if (o["frames"] - kernel) // o["stride"] + 1 == patches // mel_rows:
        frames = o["frames"]  # the preset's length gives the same grid: keep it
    return {"kernel": kernel, "frames": frames}


def _imu(o: dict[str, Any], shapes: Shapes, w: int, source: str) -> dict[str, Any]:
    _, channels, kernel = shapes["conv1.imu.weight"]
    tokens = shapes["positional_embedding.imu"][0] - 1
    return {"channels": channels, "kernel": kernel, "samples": (tokens - 1) * o["stride"] + kernel}


def _fmri(o: dict[str, Any], shapes: Shapes, w: int, source: str) -> dict[str, Any]:
    out, voxels = shapes["conv1.fmri.weight"]
    if out % w:
        raise BadInputError(source, f"fMRI projection width {out} is not a multiple of the encoder width {w}")
    return {"voxels": voxels, "tokens": out // w}


def _point(o: dict[str, Any], shapes: Shapes, w: int, source: str) -> dict[str, Any]:
    centers = shapes["positional_embedding.point"][0] - 1
    return {"channels": shapes["conv1.point.conv1.weight"][1], "centers": centers, "points": max(o["points"], centers)}


# Official modality -> options read from its own tensors' shapes.
SHAPE_OPTIONS: dict[str, Callable[[dict[str, Any], Shapes, int, str], dict[str, Any]]] = {
    "audio": _audio,
    "imu": _imu,
    "fmri": _fmri,
    "point": _point,
}


def _options(ours: str, theirs: str, preset: dict[str, Any], shapes: Shapes, w: int, source: str) -> dict[str, Any]:
    """The preset's options, overridden where the checkpoint's shapes say otherwise; values
    equal to the tokenizer's own defaults are left out, as the preset leaves them out."""
    from ..registry import get_modality

    defaults = dataclasses.asdict(get_modality(ours).tokenizer.Options())
    options = {**defaults, **preset}
    if theirs in SHAPE_OPTIONS:
        options.update(SHAPE_OPTIONS[theirs](options, shapes, w, source))
    return {k: v for k, v in options.items() if k in preset or v != defaults.get(k)}
