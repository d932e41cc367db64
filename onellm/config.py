"""Configuration dataclasses: the single source of truth for every shape in a OneLLM model.

No torch import here, so configs load and validate without building anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from .errors import describe

PRESET_DIR = Path(__file__).parent / "presets"
CONFIG_NAME = "config.json"  # a saved model's OneLLMConfig


class Prompting(str, Enum):
    """How a model is asked, as its last training stage trained it (OneLLMConfig.prompting).
    The processor alone turns it into prompt text (OneLLMProcessor.request)."""

    BARE = "bare"  # the caption follows the modality tokens directly, as the alignment stages train
    TEMPLATE = "template"  # a question in the prompt template, as instruction tuning trains


@dataclass
class EncoderConfig:
    """The shared CLIP-style ViT. `pretrained` is a local Hugging Face CLIP (vision) directory."""

    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    image_size: int = 224
    patch_size: int = 14
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"encoder width {self.width} is not divisible by heads {self.heads}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


@dataclass
class UPMConfig:
    """Universal Projection Module: E experts of `layers_per_expert` LLaMA-style blocks, Q queries."""

    num_experts: int = 3
    layers_per_expert: int = 8
    num_queries: int = 30
    heads: int = 16
    norm_eps: float = 1e-5
    ffn_multiple_of: int = 256
    # Run the E experts as one batched computation (True), one after another (False), or
    # "auto": stacked on CPU up to width 128 (where it was measured to pay), plain elsewhere.
    batch_experts: bool | str = "auto"
    # Start each modality's output LayerNorm at the LM's embedding statistics (per channel: the
    # mean and spread of the embedding rows) instead of unit gain. A LayerNorm's unit-gain
    # output has norm sqrt(D) (24 at D = 576) while a pretrained LM's embedding rows are far
    # smaller (3.2 for SmolLM2), and a frozen LM barely reads tokens that far out of its
    # distribution. Off for the published OneLLM recipe, which trains from unit gain.
    match_llm_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.batch_experts not in (True, False, "auto"):
            raise ValueError(f"batch_experts must be true, false or 'auto', got {self.batch_experts!r}")

    def ffn_hidden(self, width: int) -> int:
        # LLaMA's SwiGLU sizing: 2/3 of 4W rounded up to a multiple (2816 for W = 1024).
        hidden = int(2 * 4 * width / 3)
        return self.ffn_multiple_of * math.ceil(hidden / self.ffn_multiple_of)


@dataclass
class LLMConfig:
    """Where the causal LM comes from.

    `name_or_path`: a local Hugging Face directory (relative paths resolve against the model
    directory), or `pkg:<python package>` for a directory shipped inside an installed package.
    `random_init`: keyword arguments of a transformers config (with `model_type`) for a
    randomly initialised LM; used when `name_or_path` is empty.
    `text_tokenizer`: "bytes" builds an offline byte-level tokenizer for random LMs.
    `lora`: set in a saved model whose LoRA adapter was kept apart from the LM's weights.
    """

    name_or_path: str | None = None
    gguf_file: str | None = None
    random_init: dict[str, Any] | None = None
    text_tokenizer: str | None = None
    hidden_size: int | None = None
    # A LoRA adapter saved beside the LM (onellm.model.lora.LoRAConfig's fields), loaded on top.
    lora: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.name_or_path and not self.random_init:
            raise ValueError("llm needs either name_or_path or random_init")
        if self.random_init and "hidden_size" in self.random_init:
            self.hidden_size = int(self.random_init["hidden_size"])


@dataclass
class OneLLMConfig:
    """A whole model: encoder, UPM, LLM and the options of each configured modality tokenizer."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    upm: UPMConfig = field(default_factory=UPMConfig)
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(random_init={"model_type": "llama"}))
    modalities: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompt_template: str = "onellm"
    # A Prompting value, kept as its plain string so that the config dumps to JSON and YAML
    # alike. Generation asks in it by default.
    prompting: str = Prompting.TEMPLATE.value
    train_encoder: bool = False
    train_llm: bool = False

    def __post_init__(self) -> None:
        for key, cls in (("encoder", EncoderConfig), ("upm", UPMConfig), ("llm", LLMConfig)):
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, _build(cls, value, key))
        self.modalities = {name: dict(opts or {}) for name, opts in self.modalities.items()}
        if not self.modalities:
            raise ValueError("a model needs at least one modality")
        if self.prompt_template not in ("onellm", "chat"):
            raise ValueError(f"prompt_template must be 'onellm' or 'chat', got {self.prompt_template!r}")
        try:
            self.prompting = Prompting(self.prompting).value
        except ValueError:
            raise ValueError(
                f"prompting must be one of {[p.value for p in Prompting]}, got {self.prompting!r}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OneLLMConfig:
        return _build(cls, data, "config")

    @classmethod
    def from_file(cls, path: str | Path) -> OneLLMConfig:
        path = Path(path)
        kind = "JSON" if path.suffix == ".json" else "YAML"
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ValueError(f"{path}: not a readable {kind} file ({describe(err)})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def from_preset(cls, name: str) -> OneLLMConfig:
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
        return cls.from_file(path)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_model(name_or_dir: str | Path, needs: tuple[str, ...] = ()) -> tuple[OneLLMConfig, Path | None]:
    """A model named the way every command takes one: a save_pretrained directory (its config
    and the directory) or a preset name (its config and None). A directory wins over a preset
    of the same name; it must hold config.json and the files `needs` names."""
    directory = Path(name_or_dir).expanduser()
    if directory.is_dir():
        for needed in (CONFIG_NAME, *needs):
            if not (directory / needed).is_file():
                raise FileNotFoundError(f"{directory}: missing {needed}; not a OneLLM save_pretrained directory")
        return OneLLMConfig.from_file(directory / CONFIG_NAME), directory
    if str(name_or_dir) in list_presets():
        return OneLLMConfig.from_preset(str(name_or_dir)), None
    raise FileNotFoundError(f"{name_or_dir}: neither a model directory nor a preset ({', '.join(list_presets())})")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; expected some of {sorted(names)}")
    return cls(**data)
