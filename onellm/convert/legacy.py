"""Saved state of earlier onellm layouts, renamed to the current one by a table (data, not
code in the model): applied when a saved model loads (OneLLM.from_pretrained) and when a
training checkpoint resumes (OneLLMModule.on_load_checkpoint)."""

from __future__ import annotations

import re

import torch

# The UPM's experts were once one module of stacked [E, ...] tensors, `layers.{l}.{name}`;
# each expert block is its own module now: `experts.{e}.{l}.{new name}`.
STACKED_UPM_NAMES = {
    "attention_norm": "attention_norm.weight",
    "ffn_norm": "ffn_norm.weight",
    **{n: f"attention.{n}.weight" for n in ("wq", "wk", "wv", "wo")},
    **{n: f"feed_forward.{n}.weight" for n in ("w1", "w2", "w3")},
}


def split_stacked_upm(state: dict[str, torch.Tensor], prefix: str = "upm.") -> dict[str, torch.Tensor]:
    """`state` with every stacked expert tensor under `prefix` split into the per-expert names;
    other keys pass as they are."""
    stacked = re.compile(re.escape(prefix) + r"layers\.(\d+)\.(" + "|".join(STACKED_UPM_NAMES) + r")")
    out = {}
    for key, tensor in state.items():
        found = stacked.fullmatch(key)
        if found is None:
            out[key] = tensor
            continue
        layer, name = found.groups()
        for e, part in enumerate(tensor.unbind(0)):
            out[f"{prefix}experts.{e}.{layer}.{STACKED_UPM_NAMES[name]}"] = part
    return out
