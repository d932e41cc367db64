"""What a modality is: a tokenizer module that turns its input into patch tokens for the
shared encoder, plus a spec that names it and brings its loader and default prompt."""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple

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
    def from_options(cls, encoder: EncoderConfig, options: dict[str, Any] | None) -> "ModalityTokenizer":
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = set(options or {}) - fields
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}; known: {sorted(fields)}")
        return cls(encoder, cls.Options(**(options or {})))

    input_shape: tuple[int, ...]
    num_patches: int

    def tokenize(self, x: torch.Tensor, encoder: "SharedEncoder") -> TokenGrid:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, encoder: "SharedEncoder") -> TokenGrid:
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{type(self).__name__} expects input [B, {', '.join(map(str, self.input_shape))}], "
                f"got {list(x.shape)}"
            )
        return self.tokenize(x, encoder)

    def example_input(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random batch of valid input, for tests, benchmarks and shape checks."""
        return torch.randn(batch, *self.input_shape, generator=generator)


def learned_pos_embed(rows: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(rows, width) * width**-0.5)


@dataclass(frozen=True)
class ModalitySpec:
    """Everything the core needs to know about a modality; registered by name.

    `load(paths, tokenizer, train=False, meta=None)` turns a sample's files into one input
    of `tokenizer.input_shape`: paths[0] is the modality's own file, paths[1:] the
    `companions` it names (an RGB image beside a depth map, an ROI mask beside a volume);
    `train` switches on random augmentation; `meta` carries per-sample facts from the
    manifest (a sample rate, a time window). It raises `onellm.errors.BadInputError`.
    `official_name` is the key used by the published OneLLM checkpoint when it differs
    from `name`. `synthesize` and `preview` are callables or lazy "module:function" references.
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
    synthesize: Callable[[Path, str, np.random.Generator], dict[str, Any]] | str | None = None

    # preview(paths) -> a matplotlib Figure, a PIL image, a path a browser can show (image,
    # video, audio) or a list of these; the demo shows it beside the answer. A callable or a lazy "module:function".
    preview: Callable[[list[Path]], Any] | str | None = None

    def previewer(self) -> Callable[[list[Path]], Any] | None:
        return _resolve(self.preview)

    def synthesizer(self) -> Callable[[Path, str, np.random.Generator], dict[str, Any]] | None:
        return _resolve(self.synthesize)

    def caption_prompt(self) -> str:
        return self.prompt.format(name=self.name)


def _resolve(hook: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    """Hooks may be given as "module:function" so that the registry imports nothing heavy."""
    if not isinstance(hook, str):
        return hook
    module, _, attr = hook.partition(":")
    return getattr(importlib.import_module(module), attr)
