"""LoRA on the causal LM through peft: adapters injected in place (the LM stays a plain
transformers model, so forward, generate and the training path are unchanged), merged into
the weights at export or kept beside them as an adapter that `from_pretrained` loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import BadInputError, describe

ADAPTER_WEIGHTS = "adapter.safetensors"


@dataclass
class LoRAConfig:
    """`r` 0 switches LoRA off. `target_modules`: names of the LM's linear layers to adapt
    (peft matches them against the end of each module's name). `merge`: fold the adapters
    into the exported weights (a plain model) rather than keep them as an adapter file."""

    r: int = 0
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge: bool = True

    def __post_init__(self) -> None:
        if self.r < 0 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA needs r >= 0, alpha > 0 and 0 <= dropout < 1, got {self}")
        if self.r and not self.target_modules:
            raise ValueError("LoRA needs at least one target module name")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inject_lora(llm: nn.Module, config: LoRAConfig) -> int:
    """Injects adapters into `llm`, freezes everything else in it; returns the number of
    adapter parameters."""
    import peft

    peft_config = peft.LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=list(config.target_modules)
    )
    try:
        peft.inject_adapter_in_model(peft_config, llm)
    except ValueError as err:  # peft names the modules it could not find
        raise ValueError(f"LoRA target modules {config.target_modules} ({describe(err)})") from err
    for name, p in llm.named_parameters():
        p.requires_grad_("lora_" in name)
    return sum(p.numel() for name, p in llm.named_parameters() if "lora_" in name)


def base_state_dict(llm: nn.Module, merged: bool) -> dict[str, torch.Tensor]:
    """The LM's weights under their plain names, without adapter tensors. `merged` adds each
    adapter's delta to its layer's weight in a new tensor: the live weights are neither copied
    nor changed (an in-place merge and unmerge would not give back the same bits)."""
    from peft.tuners.lora import LoraLayer

    state = {k.replace(".base_layer.", "."): v for k, v in llm.state_dict().items() if "lora_" not in k}
    if merged:
        for name, layer in llm.named_modules():
            if isinstance(layer, LoraLayer):
                weight = state[f"{name}.weight"]
                delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters)
                state[f"{name}.weight"] = (weight + delta).to(weight.dtype).detach()
    return state


def save_adapter(llm: nn.Module, directory: Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in llm.state_dict().items() if "lora_" in k}
    save_file(tensors, directory / ADAPTER_WEIGHTS, metadata={"format": "pt"})


def load_adapter(llm: nn.Module, config: LoRAConfig, directory: Path) -> None:
    path = directory / ADAPTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the config names a LoRA adapter (llm.lora) but none was saved")
    inject_lora(llm, config)
    try:
        tensors = load_file(path)
    except Exception as err:  # safetensors raises its own error types
        raise BadInputError(path, f"not a readable safetensors file ({describe(err)})") from err
    expected = {k: tuple(v.shape) for k, v in llm.state_dict().items() if "lora_" in k}
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors))[:3], sorted(set(tensors) - set(expected))[:3]
        raise BadInputError(path, f"adapter does not fit the LM: missing {missing}, unexpected {extra}")
    wrong = [k for k, t in tensors.items() if tuple(t.shape) != expected[k]]
    if wrong:
        raise BadInputError(
            path,
            f"{wrong[0]} has shape {list(tensors[wrong[0]].shape)}, the LoRA config "
            f"(r={config.r}) gives {list(expected[wrong[0]])}",
        )
    llm.load_state_dict(tensors, strict=False)
