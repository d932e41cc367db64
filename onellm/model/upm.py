"""Universal Projection Module: per-modality projections, queries and routers over shared experts."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UPMConfig


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Normalise in float32 as LLaMA does, so half-precision runs match the reference.
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


class ExpertLayer(nn.Module):
    """Layer l of all E experts at once: a LLaMA block (RMSNorm, full attention without
    rotary embedding, SwiGLU, no biases) whose weights carry a leading expert axis."""

    def __init__(self, experts: int, width: int, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.attention_norm = nn.Parameter(torch.ones(experts, width))
        self.ffn_norm = nn.Parameter(torch.ones(experts, width))
        # Shapes follow nn.Linear's [out, in] so each slice is one official tensor.
        self.wq = nn.Parameter(torch.empty(experts, width, width))
        self.wk = nn.Parameter(torch.empty(experts, width, width))
        self.wv = nn.Parameter(torch.empty(experts, width, width))
        self.wo = nn.Parameter(torch.empty(experts, width, width))
        self.w1 = nn.Parameter(torch.empty(experts, hidden, width))
        self.w3 = nn.Parameter(torch.empty(experts, hidden, width))
        self.w2 = nn.Parameter(torch.empty(experts, width, hidden))
        for name in ("wq", "wk", "wv", "wo", "w1", "w3", "w2"):
            nn.init.normal_(getattr(self, name), std=width**-0.5)

    @staticmethod
    def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # x [E, B, S, in] with weight [E, out, in]: one bmm over the experts. Folding B and S
        # into one axis avoids broadcasting (and copying) the weight across the batch.
        e, b, s, _ = x.shape
        return torch.bmm(x.reshape(e, b * s, -1), weight.transpose(1, 2)).view(e, b, s, -1)

    def forward(self, h: torch.Tensor, keep: int | None = None, experts: slice = slice(None)) -> torch.Tensor:
        """h [E', B, S, W] -> [E', B, S', W] for the experts in `experts` (all by default);
        S' = keep when given (only those rows are needed next)."""
        e, b, s, w = h.shape
        p = {name: getattr(self, name)[experts] for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3")}
        x = rms_norm(h, self.attention_norm[experts, None, None], self.eps)
        rows = x if keep is None else x[:, :, :keep]
        hd = w // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(e * b, t.shape[2], self.heads, hd).transpose(1, 2)

        q = split(self._linear(rows, p["wq"]))
        k = split(self._linear(x, p["wk"]))
        v = split(self._linear(x, p["wv"]))
        att = F.scaled_dot_product_attention(q, k, v)
        att = att.transpose(1, 2).reshape(e, b, rows.shape[2], w)
        h = (h if keep is None else h[:, :, :keep]) + self._linear(att, p["wo"])
        x = rms_norm(h, self.ffn_norm[experts, None, None], self.eps)
        gated = F.silu(self._linear(x, p["w1"])) * self._linear(x, p["w3"])
        return h + self._linear(gated, p["w2"])


class UniversalProjection(nn.Module):
    """Maps encoder features of one modality to Q LLM tokens wrapped in start/end tags.

    Each expert reads [queries; projected features]; a per-modality router weighs the
    experts per query token (sigmoid, normalised over experts) and the weighted sum of the
    query outputs is projected to the LLM width.
    """

    def __init__(self, config: UPMConfig, width: int, llm_width: int, modalities: list[str]) -> None:
        super().__init__()
        self.config, self.width, self.llm_width = config, width, llm_width
        hidden = config.ffn_hidden(width)
        self.layers = nn.ModuleList(
            ExpertLayer(config.num_experts, width, hidden, config.heads, config.norm_eps)
            for _ in range(config.layers_per_expert)
        )
        self.in_proj = nn.ModuleDict()
        self.routers = nn.ModuleDict()
        self.out_proj = nn.ModuleDict()
        self.queries = nn.ParameterDict()
        self.start_tag = nn.ParameterDict()
        self.end_tag = nn.ParameterDict()
        for name in modalities:
            self.add_modality(name)

    @property
    def modalities(self) -> list[str]:
        return list(self.queries.keys())

    def add_modality(self, name: str, copy_from: str | None = None) -> None:
        """Create the per-modality parts; with `copy_from`, start them as copies of that
        modality's (OneLLM initialises each new modality from image's)."""
        w, d, cfg = self.width, self.llm_width, self.config
        self.in_proj[name] = nn.Sequential(nn.Linear(w, w), nn.LayerNorm(w))
        self.routers[name] = nn.Sequential(nn.Linear(w, 4 * w), nn.GELU(), nn.Linear(4 * w, cfg.num_experts))
        self.out_proj[name] = nn.Sequential(nn.Linear(w, d), nn.LayerNorm(d))
        self.queries[name] = nn.Parameter(torch.randn(1, cfg.num_queries, w) * 0.02)
        self.start_tag[name] = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.end_tag[name] = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        if copy_from is not None:
            for table in (self.in_proj, self.routers, self.out_proj):
                table[name].load_state_dict(table[copy_from].state_dict())
            for table in (self.queries, self.start_tag, self.end_tag):
                table[name].data.copy_(table[copy_from].data)

    def run_experts(self, seq: torch.Tensor, experts: slice = slice(None)) -> torch.Tensor:
        """seq [B, S, W] through the experts in `experts` -> their query rows [E', B, Q, W]."""
        count = len(range(*experts.indices(self.config.num_experts)))
        h = seq.unsqueeze(0).expand(count, -1, -1, -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, keep=self.config.num_queries if i == last else None, experts=experts)
        return h

    def _expert_groups(self, device: torch.device) -> list[slice]:
        batched = self.config.batch_experts
        if batched == "auto":
            # Measured (benchmarks/bench_upm.py, 2 cores): on CPU one expert at a time keeps
            # its activations in cache and wins from width 256 up (1.4x); below, call
            # overhead dominates and batching wins (1.3x at width 64).
            batched = device.type != "cpu" or self.width <= 128
        if batched:
            return [slice(None)]
        return [slice(e, e + 1) for e in range(self.config.num_experts)]

    def forward(self, modality: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, N, W] -> (tokens [B, Q + 2, D] with tags, routing weights [B, Q, E])."""
        b = features.shape[0]
        q = self.config.num_queries
        queries = self.queries[modality].to(features.dtype).expand(b, -1, -1)
        seq = torch.cat([queries, self.in_proj[modality](features)], dim=1)
        # The router is per token and only the query rows are kept, so only they are routed.
        logits = self.routers[modality](seq[:, :q]).float().sigmoid()
        routing = logits / logits.sum(-1, keepdim=True)
        outputs = [self.run_experts(seq, group) for group in self._expert_groups(features.device)]
        h = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        mixed = torch.einsum("ebqw,bqe->bqw", h.float(), routing).to(features.dtype)
        tokens = self.out_proj[modality](mixed)
        start = self.start_tag[modality].to(tokens.dtype).expand(b, -1, -1)
        end = self.end_tag[modality].to(tokens.dtype).expand(b, -1, -1)
        return torch.cat([start, tokens, end], dim=1), routing
