"""The published OneLLM checkpoint's keys mapped to ours, as data plus three named transforms.

A `Rule` ties one group of official tensors to one group of ours:
  copy    one tensor, unchanged
  rotary  LLaMA wq / wk: Meta rotates interleaved pairs (2k, 2k+1), Hugging Face's Llama the
          two halves of each head, so the rows of each head are permuted
  qkv     CLIP's stacked in_proj (q, k, v in that order) split into three projections
Every transform has an exact inverse, so `to_official` gives back the very same tensors.
docs/convert-official.md describes the layout and how to convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

PREFIX = "llma."

LLM_TOP = {
    "tok_embeddings.weight": "llm.model.embed_tokens.weight",
    "norm.weight": "llm.model.norm.weight",
    "output.weight": "llm.lm_head.weight",
}
# official suffix of `layers.{i}.` -> (ours under `llm.model.layers.{i}.`, transform)
LLM_LAYER = {
    "attention.wq.weight": ("self_attn.q_proj.weight", "rotary"),
    "attention.wk.weight": ("self_attn.k_proj.weight", "rotary"),
    "attention.wv.weight": ("self_attn.v_proj.weight", "copy"),
    "attention.wo.weight": ("self_attn.o_proj.weight", "copy"),
    "feed_forward.w1.weight": ("mlp.gate_proj.weight", "copy"),
    "feed_forward.w3.weight": ("mlp.up_proj.weight", "copy"),
    "feed_forward.w2.weight": ("mlp.down_proj.weight", "copy"),
    "attention_norm.weight": ("input_layernorm.weight", "copy"),
    "ffn_norm.weight": ("post_attention_layernorm.weight", "copy"),
}
CLIP_TOP = {
    "clip.visual.conv1.weight": "encoder.vit.embeddings.patch_embedding.weight",
    "clip.visual.class_embedding": "encoder.vit.embeddings.class_embedding",
    "clip.visual.positional_embedding": "encoder.vit.embeddings.position_embedding.weight",
    "clip.visual.ln_pre.weight": "encoder.vit.pre_layrnorm.weight",
    "clip.visual.ln_pre.bias": "encoder.vit.pre_layrnorm.bias",
    "clip.visual.ln_post.weight": "encoder.vit.post_layernorm.weight",
    "clip.visual.ln_post.bias": "encoder.vit.post_layernorm.bias",
}
# official suffix of `clip.visual.transformer.resblocks.{j}.` -> ours under `encoder.vit.encoder.layers.{j}.`
CLIP_BLOCK = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
CLIP_QKV = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
# Suffixes of `resample_layers.{e}.{l}.`: our `upm.experts.{e}.{l}.` uses the same names.
UPM_LAYER = (
    "attention.wq.weight",
    "attention.wk.weight",
    "attention.wv.weight",
    "attention.wo.weight",
    "feed_forward.w1.weight",
    "feed_forward.w2.weight",
    "feed_forward.w3.weight",
    "attention_norm.weight",
    "ffn_norm.weight",
)
# Per-modality UPM parts: official key with {m} -> ours with {m} (each side's own name).
UPM_MODALITY = {
    "clip_proj1.{m}.0.weight": "upm.in_proj.{m}.0.weight",
    "clip_proj1.{m}.0.bias": "upm.in_proj.{m}.0.bias",
    "clip_proj1.{m}.1.weight": "upm.in_proj.{m}.1.weight",
    "clip_proj1.{m}.1.bias": "upm.in_proj.{m}.1.bias",
    "clip_proj2.{m}.0.weight": "upm.out_proj.{m}.0.weight",
    "clip_proj2.{m}.0.bias": "upm.out_proj.{m}.0.bias",
    "clip_proj2.{m}.1.weight": "upm.out_proj.{m}.1.weight",
    "clip_proj2.{m}.1.bias": "upm.out_proj.{m}.1.bias",
    "routers.{m}.fc1.weight": "upm.routers.{m}.0.weight",
    "routers.{m}.fc1.bias": "upm.routers.{m}.0.bias",
    "routers.{m}.fc2.weight": "upm.routers.{m}.2.weight",
    "routers.{m}.fc2.bias": "upm.routers.{m}.2.bias",
    "resample_tokens.{m}": "upm.queries.{m}",
    "start_tag.{m}": "upm.start_tag.{m}",
    "end_tag.{m}": "upm.end_tag.{m}",
}
# Modality front-ends with weights of their own (image-like ones borrow the encoder's conv).
TOKENIZER = {
    "conv1.audio.weight": "tokenizers.audio.conv.weight",
    "conv1.audio.bias": "tokenizers.audio.conv.bias",
    "positional_embedding.audio": "tokenizers.audio.pos_embed",
    "conv1.point.conv1.weight": "tokenizers.point.conv.weight",
    "conv1.point.conv1.bias": "tokenizers.point.conv.bias",
    "positional_embedding.point": "tokenizers.point.pos_embed",
    "conv1.imu.weight": "tokenizers.imu.conv.weight",
    "positional_embedding.imu": "tokenizers.imu.pos_embed",
    "conv1.fmri.weight": "tokenizers.fmri.proj.weight",
    "conv1.fmri.bias": "tokenizers.fmri.proj.bias",
    "positional_embedding.fmri": "tokenizers.fmri.pos_embed",
}
# The official modality each of those keys belongs to: its second dotted part.
TOKENIZER_OWNER = {key: key.split(".")[1] for key in TOKENIZER}


def is_ignored(key: str) -> bool:
    """Official tensors OneLLM never uses: CLIP's text tower and its image projection."""
    return key == "clip.visual.proj" or (key.startswith("clip.") and not key.startswith("clip.visual."))


@dataclass
class Layout:
    """What the rules need to know about a checkpoint: counts, head numbers and the
    modalities it holds (official name -> ours)."""

    llm_layers: int
    llm_heads: int
    clip_layers: int
    num_experts: int
    upm_layers: int
    modalities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    official: tuple[str, ...]
    ours: tuple[str, ...]
    kind: str = "copy"
    heads: int = 0


def build_rules(layout: Layout) -> list[Rule]:
    rules = [Rule((k,), (v,)) for k, v in LLM_TOP.items()]
    for i in range(layout.llm_layers):
        for k, (v, kind) in LLM_LAYER.items():
            rules.append(Rule((f"layers.{i}.{k}",), (f"llm.model.layers.{i}.{v}",), kind, layout.llm_heads))
    rules += [Rule((k,), (v,)) for k, v in CLIP_TOP.items()]
    for j in range(layout.clip_layers):
        src, dst = f"clip.visual.transformer.resblocks.{j}.", f"encoder.vit.encoder.layers.{j}."
        rules += [Rule((src + k,), (dst + v,)) for k, v in CLIP_BLOCK.items()]
        for k, kind in CLIP_QKV.items():
            rules.append(Rule((src + k,), tuple(f"{dst}self_attn.{p}_proj.{kind}" for p in "qkv"), "qkv"))
    for e in range(layout.num_experts):
        for layer in range(layout.upm_layers):
            rules += [Rule((f"resample_layers.{e}.{layer}.{k}",), (f"upm.experts.{e}.{layer}.{k}",)) for k in UPM_LAYER]
    for theirs, ours in layout.modalities.items():
        rules += [Rule((k.format(m=theirs),), (v.format(m=ours),)) for k, v in UPM_MODALITY.items()]
        rules += [
            Rule((k,), (v.replace(f".{theirs}.", f".{ours}."),))
            for k, v in TOKENIZER.items()
            if TOKENIZER_OWNER[k] == theirs
        ]
    return rules


def _rotary_to_hf(w: torch.Tensor, heads: int) -> torch.Tensor:
    # Within each head, rows (2k, 2k+1) become rows (k, k + head_dim / 2).
    out, inp = w.shape
    return w.view(heads, out // heads // 2, 2, inp).transpose(1, 2).reshape(out, inp)


def _rotary_to_meta(w: torch.Tensor, heads: int) -> torch.Tensor:
    out, inp = w.shape
    return w.view(heads, 2, out // heads // 2, inp).transpose(1, 2).reshape(out, inp)


def to_ours(rule: Rule, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    if rule.kind == "copy":
        return tensors
    if rule.kind == "rotary":
        return [_rotary_to_hf(tensors[0], rule.heads)]
    if rule.kind == "qkv":
        return list(tensors[0].chunk(3, dim=0))
    raise ValueError(f"unknown transform {rule.kind!r}")


def to_theirs(rule: Rule, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    if rule.kind == "copy":
        return tensors
    if rule.kind == "rotary":
        return [_rotary_to_meta(tensors[0], rule.heads)]
    if rule.kind == "qkv":
        return [torch.cat(tensors, dim=0)]
    raise ValueError(f"unknown transform {rule.kind!r}")


def official_names() -> dict[str, str]:
    """Our registered modality names by their name in the published checkpoint."""
    from ..registry import get_modality, list_modalities

    return {get_modality(n).official_name or n: n for n in list_modalities()}


def to_official(model) -> dict[str, torch.Tensor]:
    """Our OneLLM model -> a flat state dict in the published layout (keys with `llma.`)."""
    cfg = model.config
    theirs = {ours: official for official, ours in official_names().items()}
    layout = Layout(
        llm_layers=model.llm.config.num_hidden_layers,
        llm_heads=model.llm.config.num_attention_heads,
        clip_layers=cfg.encoder.layers,
        num_experts=cfg.upm.num_experts,
        upm_layers=cfg.upm.layers_per_expert,
        modalities={theirs.get(m, m): m for m in model.modalities},
    )
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for rule in build_rules(layout):
        for key, tensor in zip(rule.official, to_theirs(rule, [state[k] for k in rule.ours])):
            out[PREFIX + key] = tensor.detach().clone()
    return out
