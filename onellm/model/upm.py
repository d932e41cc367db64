"""Universal Projection Module: per-modality projections, queries and routers over shared experts."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UPMConfig


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Normalise in float32 as LLaMA does, so half-precision runs match the reference.
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


Weights = dict[str, torch.Tensor]
Linear = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class ExpertBlock(nn.Module):
    """Layer l of expert e: a LLaMA block (RMSNorm, full attention without rotary embedding,
    SwiGLU, no biases), named as the published `resample_layers.{e}.{l}`."""

    def __init__(self, width: int, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.attention_norm = RMSNorm(width, eps)
        self.ffn_norm = RMSNorm(width, eps)
        self.attention = nn.ModuleDict({n: nn.Linear(width, width, bias=False) for n in ("wq", "wk", "wv", "wo")})
        self.feed_forward = nn.ModuleDict(
            {
                "w1": nn.Linear(width, hidden, bias=False),
                "w2": nn.Linear(hidden, width, bias=False),
                "w3": nn.Linear(width, hidden, bias=False),
            }
        )
        for linear in (*self.attention.values(), *self.feed_forward.values()):
            nn.init.normal_(linear.weight, std=width**-0.5)

    def weights(self) -> Weights:
        return {
            "attention_norm": self.attention_norm.weight,
            "ffn_norm": self.ffn_norm.weight,
            **{n: m.weight for n, m in self.attention.items()},
            **{n: m.weight for n, m in self.feed_forward.items()},
        }

    def forward(self, h: torch.Tensor, keep: int | None = None) -> torch.Tensor:
        """h [B, S, W] -> [B, S', W]; S' = keep when given (only those rows are needed next)."""
        return llama_block(h, self.weights(), self.heads, self.eps, keep, F.linear)


def llama_block(h: torch.Tensor, w: Weights, heads: int, eps: float, keep: int | None, linear: Linear) -> torch.Tensor:
    """The block on h [..., S, W] with weights `w`: one expert's (F.linear) or every
    expert's stacked along a leading axis (stacked_linear, h [E, B, S, W])."""
    lead, width = h.shape[:-2], h.shape[-1]
    x = rms_norm(h, w["attention_norm"], eps)
    rows = x if keep is None else x[..., :keep, :]
    hd = width // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, t.shape[-2], heads, hd).transpose(1, 2)

    att = F.scaled_dot_product_attention(
        split(linear(rows, w["wq"])), split(linear(x, w["wk"])), split(linear(x, w["wv"]))
    )
    att = att.transpose(1, 2).reshape(*lead, rows.shape[-2], width)
    h = (h if keep is None else h[..., :keep, :]) + linear(att, w["wo"])
    x = rms_norm(h, w["ffn_norm"], eps)
    return h + linear(F.silu(linear(x, w["w1"])) * linear(x, w["w3"]), w["w2"])


def stacked_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # x [E, B, S, in] with weight [E, out, in]: one bmm over the experts. Folding B and S
    # into one axis avoids broadcasting (and copying) the weight across the batch.
    e, b, s, _ = x.shape
    return torch.bmm(x.reshape(e, b * s, -1), weight.transpose(1, 2)).view(e, b, s, -1)


def stack_weights(blocks: list[ExpertBlock]) -> Weights:
    """Layer l of several experts as [E, ...] tensors; norm weights shaped to broadcast over
    [E, B, S, W]."""
    per_block = [block.weights() for block in blocks]
    stacked = {name: torch.stack([w[name] for w in per_block]) for name in per_block[0]}
    for name in ("attention_norm", "ffn_norm"):
        stacked[name] = stacked[name][:, None, None]
    return stacked


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
        self.experts = nn.ModuleList(
            nn.ModuleList(
                ExpertBlock(width, hidden, config.heads, config.norm_eps) for _ in range(config.layers_per_expert)
            )
            for _ in range(config.num_experts)
        )
        # Set when the expert blocks are sharded (FSDP): their weights are whole only inside
        # their own forward, so the stacked path, which reads them directly, cannot run.
        self.blocks_only = False
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

    def match_embeddings(self, embeddings: torch.Tensor) -> None:
        """Every modality's output LayerNorm to the per-channel mean and spread of the LM's
        embedding rows `embeddings` [V, D] (UPMConfig.match_llm_embeddings)."""
        rows = embeddings.detach().float()
        with torch.no_grad():
            for norm in (proj[1] for proj in self.out_proj.values()):
                norm.weight.copy_(rows.std(0))
                norm.bias.copy_(rows.mean(0))

    def run_experts(self, seq: torch.Tensor, experts: slice = slice(None), stacked: bool = False) -> torch.Tensor:
        """seq [B, S, W] through the experts in `experts` -> their query rows [E', B, Q, W];
        `stacked` computes them together (layer by layer, weights stacked on the fly) rather
        than one expert after another."""
        chosen = list(self.experts)[experts]
        q, last = self.config.num_queries, self.config.layers_per_expert - 1
        if not stacked:
            outputs = []
            for expert in chosen:
                h = seq
                for i, block in enumerate(expert):
                    h = block(h, keep=q if i == last else None)
                outputs.append(h)
            return torch.stack(outputs)
        h = seq.unsqueeze(0).expand(len(chosen), -1, -1, -1)
        for i in range(last + 1):
            blocks = [expert[i] for expert in chosen]
            h = llama_block(
                h,
                stack_weights(blocks),
                self.config.heads,
                self.config.norm_eps,
                q if i == last else None,
                stacked_linear,
            )
        return h

    def _stack_experts(self, device: torch.device) -> bool:
        if self.blocks_only:
            return False
        if self.config.batch_experts != "auto":
            return bool(self.config.batch_experts)
        # Measured (benchmarks/bench_upm.py, 2-core CPU, forward + backward): stacked experts
        # win at small widths where per-call overhead dominates (1.23x at width 64), break
        # even on long sequences and lose from width 256 up (0.91x; 0.52x at 1024). Nothing
        # has been measured on an accelerator, so there the plain modules run.
        return device.type == "cpu" and self.width <= 128

    def forward(self, modality: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, N, W] -> (tokens [B, Q + 2, D] with tags, routing weights [B, Q, E])."""
        b = features.shape[0]
        q = self.config.num_queries
        queries = self.queries[modality].to(features.dtype).expand(b, -1, -1)
        seq = torch.cat([queries, self.in_proj[modality](features)], dim=1)
        # The router is per token and only the query rows are kept, so only they are routed.
        logits = self.routers[modality](seq[:, :q]).float().sigmoid()
        routing = logits / logits.sum(-1, keepdim=True)
        h = self.run_experts(seq, stacked=self._stack_experts(features.device))
        mixed = torch.einsum("ebqw,bqe->bqw", h.float(), routing).to(features.dtype)
        tokens = self.out_proj[modality](mixed)
        start = self.start_tag[modality].to(tokens.dtype).expand(b, -1, -1)
        end = self.end_tag[modality].to(tokens.dtype).expand(b, -1, -1)
        return torch.cat([start, tokens, end], dim=1), routing
