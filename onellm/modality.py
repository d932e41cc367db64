"""What a modality is: a tokenizer module that turns its input into patch tokens for the
shared encoder, plus a spec that names it and brings its loader, default prompt, synthetic
sample generator and demo preview. What a loader sees of the tokenizer is a LoadContext."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from .config import EncoderConfig

if TYPE_CHECKING:
    from .model.encoder import SharedEncoder


class TokenGrid(NamedTuple):
    """patches [B, T, N, W] (T frames encoded separately, then averaged) and the
    positional table [N + 1, W] (row 0 belongs to the class token)."""

    patches: torch.Tensor
    pos_embed: torch.Tensor


class ModalityTokenizer(nn.Module):
    """Base of every modality front-end. Subclasses set `Options` (a dataclass of their
    shape options), `input_shape` (one sample) and `num_patches`, and implement `tokenize`."""

    Options: ClassVar[type] = dataclass(type("NoOptions", (), {}))

    def __init__(self, encoder: EncoderConfig, options: Any) -> None:
        super().__init__()
        self.encoder_config = encoder
        self.options = options

    @classmethod
    def from_options(cls, encoder: EncoderConfig, options: dict[str, Any] | None) -> ModalityTokenizer:
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = set(options or {}) - fields
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}; known: {sorted(fields)}")
        return cls(encoder, cls.Options(**(options or {})))

    input_shape: tuple[int, ...]
    num_patches: int

    def tokenize(self, x: torch.Tensor, encoder: SharedEncoder) -> TokenGrid:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, encoder: SharedEncoder) -> TokenGrid:
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{type(self).__name__} expects input [B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}"
            )
        return self.tokenize(x, encoder)

    def example_input(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random batch of valid input, for tests, benchmarks and shape checks."""
        return torch.randn(batch, *self.input_shape, generator=generator)


def learned_pos_embed(rows: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(rows, width) * width**-0.5)


@dataclass(frozen=True)
class LoadContext:
    """What a loader may know of its modality's tokenizer: the tokenizer's options, the shared
    encoder's config and the shape of one input. Small and picklable: DataLoader workers get
    this, never the tokenizer module and its weights."""

    options: Any
    encoder: EncoderConfig
    input_shape: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: ModalityTokenizer | LoadContext) -> LoadContext:
        if isinstance(tokenizer, LoadContext):
            return tokenizer
        return cls(tokenizer.options, tokenizer.encoder_config, tuple(tokenizer.input_shape))

    @classmethod
    def build(
        cls, tokenizer: type[ModalityTokenizer], encoder: EncoderConfig, options: dict[str, Any] | None
    ) -> LoadContext:
        """From a tokenizer class and its options, without weights: the tokenizer is built on
        the meta device only to read its input shape."""
        with torch.device("meta"):
            return cls.of(tokenizer.from_options(encoder, options))


@dataclass(frozen=True)
class ModalitySpec:
    """Everything the core needs to know about a modality; registered by name.

    `load(paths, ctx, train=False, meta=None)` turns a sample's files into one input of
    `ctx.input_shape` (ctx a `LoadContext`: the tokenizer's `options`, the `encoder` config,
    the `input_shape`): paths[0] is the modality's own file, paths[1:] the `companions` it
    names (an RGB image beside a depth map, an ROI mask beside a volume); `train` switches on
    random augmentation; `meta` carries per-sample facts from the manifest (a sample rate, a
    time window). It raises `onellm.errors.BadInputError`.
    `official_name` is the key used by the published OneLLM checkpoint when it differs
    from `name`.
    """

    name: str
    tokenizer: type[ModalityTokenizer]
    load: Callable[..., torch.Tensor] | None = None
    extensions: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    prompt: str = "Provide a one-sentence caption for the provided {name}."
    official_name: str | None = None
    description: str = ""
    # synthesize(out_dir, sample_id, rng) writes one sample's files and returns its manifest
    # fields (files relative to out_dir, caption, qa, meta); used by `onellm data synth`.
    synthesize: Callable[[Path, str, np.random.Generator], dict[str, Any]] | None = None
    # preview(paths) -> a matplotlib Figure, a PIL image, a path a browser can show (image,
    # video, audio) or a list of these; the demo shows it beside the answer. Import heavy
    # libraries (matplotlib) inside it, not at the top of the modality's module.
    preview: Callable[[list[Path]], Any] | None = None
    # Other modalities a file of this one holds, each read from the same file by its own
    # loader: a video's soundtrack is ("audio",). `onellm caption --with-audio` and the demo
    # offer them as further inputs beside the file.
    streams: tuple[str, ...] = ()
    # The OpenAI chat-completions content part types that carry an input of this modality
    # (`onellm serve`): ("image_url",) for images. A `*_url` part holds {"url": ...}, any other
    # {"data": base64, "format": extension}, as OpenAI's image_url and input_audio do. Every
    # modality is also reachable through the server's own `onellm_input` part.
    openai_parts: tuple[str, ...] = ()

    def caption_prompt(self) -> str:
        return self.prompt.format(name=self.name)
