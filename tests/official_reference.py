"""The published OneLLM forward, written from the description of the checkpoint's layout
and math alone (docs/convert-official.md) on a flat official state dict, so that a
converted model can be checked against it. Plain torch, float32, no code shared with onellm."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGE_LIKE = ("image", "video", "rgbd", "rgbn")


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # q, k, v [B, H, S, hd]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return scores.float().softmax(-1).type_as(q) @ v


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, s, w = x.shape
    return x.view(b, s, heads, w // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight


# CLIP ViT (open_clip layout) ----------------------------------------------------------------
def clip_encode(sd: dict, patches: torch.Tensor, pos: torch.Tensor, heads: int) -> torch.Tensor:
    """patches [B, N, W] -> every token after ln_post [B, N + 1, W]."""
    v = "clip.visual."
    w = patches.shape[-1]
    cls = sd[v + "class_embedding"].expand(patches.shape[0], 1, w)
    x = torch.cat([cls, patches], 1) + pos
    x = F.layer_norm(x, (w,), sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"])
    j = 0
    while f"{v}transformer.resblocks.{j}.ln_1.weight" in sd:
        p = f"{v}transformer.resblocks.{j}."
        h = F.layer_norm(x, (w,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        q, k, val = F.linear(h, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"]).chunk(3, -1)
        att = _merge(_attention(_heads(q, heads), _heads(k, heads), _heads(val, heads), None))
        x = x + F.linear(att, sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"])
        h = F.layer_norm(x, (w,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        j += 1
    return F.layer_norm(x, (w,), sd[v + "ln_post.weight"], sd[v + "ln_post.bias"])


# modality tokenizers -------------------------------------------------------------------------
def _fps(points: torch.Tensor, count: int) -> torch.Tensor:
    """Farthest point sampling from point 0 (clouds without ties: any tie rule agrees)."""
    b, n, _ = points.shape
    rows = torch.arange(b)
    dist = torch.full((b, n), 1e10)
    out = torch.zeros(b, count, dtype=torch.long)
    for i in range(1, count):
        d = (points - points[rows, out[:, i - 1]].unsqueeze(1)).square().sum(-1)
        dist = torch.minimum(dist, d)
        out[:, i] = dist.argmax(1)
    return out


def point_patches(sd: dict, x: torch.Tensor, centers: int, neighbours: int = 32) -> torch.Tensor:
    """x [B, N, 6]: sampling and kNN on columns 3:6, raw neighbours, 1x1 conv, max."""
    rows = torch.arange(x.shape[0])[:, None]
    colours = x[..., 3:6]
    idx = _fps(colours, centers)
    knn = torch.cdist(colours[rows, idx], colours).topk(neighbours, dim=-1, largest=False).indices
    groups = x[rows[..., None], knn]  # [B, M, k, 6]
    out = F.conv2d(groups.permute(0, 3, 1, 2), sd["conv1.point.conv1.weight"], sd["conv1.point.conv1.bias"])
    return out.amax(-1).transpose(1, 2)


def features(sd: dict, modality: str, x: torch.Tensor, clip_heads: int, centers: int = 0) -> torch.Tensor:
    """Encoder output [B, N + 1, W] for one official modality's model input."""
    b = x.shape[0]
    if modality in IMAGE_LIKE:
        conv = sd["clip.visual.conv1.weight"]
        size = x.shape[-1]
        frames = x.reshape(-1, 3, size, size)
        patches = F.conv2d(frames, conv, stride=conv.shape[-1]).flatten(2).transpose(1, 2)
        out = clip_encode(sd, patches, sd["clip.visual.positional_embedding"], clip_heads)
        return out.view(b, -1, *out.shape[1:]).mean(1)
    if modality == "audio":
        patches = F.conv2d(x, sd["conv1.audio.weight"], sd["conv1.audio.bias"], stride=10)
        patches = patches.flatten(2).transpose(1, 2)
    elif modality == "imu":
        patches = F.conv1d(x, sd["conv1.imu.weight"]).transpose(1, 2)
    elif modality == "fmri":
        out = F.linear(x, sd["conv1.fmri.weight"], sd["conv1.fmri.bias"])
        patches = out.view(b, sd["clip.visual.class_embedding"].shape[0], -1).transpose(1, 2)
    elif modality == "point":
        patches = point_patches(sd, x, centers)
    else:
        raise KeyError(modality)
    return clip_encode(sd, patches, sd[f"positional_embedding.{modality}"], clip_heads)


# Universal Projection Module ---------------------------------------------------------------
def llama_block(
    sd: dict, p: str, h: torch.Tensor, heads: int, freqs: torch.Tensor | None, mask: torch.Tensor | None
) -> torch.Tensor:
    x = rms_norm(h, sd[p + "attention_norm.weight"])
    q, k, v = (_heads(F.linear(x, sd[p + f"attention.{n}.weight"]), heads) for n in ("wq", "wk", "wv"))
    if freqs is not None:
        q, k = _rotate(q, freqs), _rotate(k, freqs)
    h = h + F.linear(_merge(_attention(q, k, v, mask)), sd[p + "attention.wo.weight"])
    x = rms_norm(h, sd[p + "ffn_norm.weight"])
    return h + F.linear(
        F.silu(F.linear(x, sd[p + "feed_forward.w1.weight"])) * F.linear(x, sd[p + "feed_forward.w3.weight"]),
        sd[p + "feed_forward.w2.weight"],
    )


def upm(sd: dict, modality: str, feats: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N + 1, W] -> [B, Q, D]: every expert runs the whole sequence; the first Q outputs,
    weighted per token by sigmoid router weights normalised over the experts, are summed."""
    m = modality
    w = feats.shape[-1]
    x = F.layer_norm(
        F.linear(feats, sd[f"clip_proj1.{m}.0.weight"], sd[f"clip_proj1.{m}.0.bias"]),
        (w,),
        sd[f"clip_proj1.{m}.1.weight"],
        sd[f"clip_proj1.{m}.1.bias"],
    )
    queries = sd[f"resample_tokens.{m}"]
    q = queries.shape[1]
    seq = torch.cat([queries.expand(x.shape[0], -1, -1), x], 1)
    logits = F.linear(
        F.gelu(F.linear(seq, sd[f"routers.{m}.fc1.weight"], sd[f"routers.{m}.fc1.bias"])),
        sd[f"routers.{m}.fc2.weight"],
        sd[f"routers.{m}.fc2.bias"],
    )
    weights = logits.sigmoid()
    weights = weights / weights.sum(-1, keepdim=True)
    out = 0
    e = 0
    while f"resample_layers.{e}.0.attention.wq.weight" in sd:
        h, layer = seq, 0
        while f"resample_layers.{e}.{layer}.attention.wq.weight" in sd:
            h = llama_block(sd, f"resample_layers.{e}.{layer}.", h, heads, None, None)
            layer += 1
        out = out + h[:, :q] * weights[:, :q, e : e + 1]
        e += 1
    d = sd[f"clip_proj2.{m}.0.weight"].shape[0]
    return F.layer_norm(
        F.linear(out, sd[f"clip_proj2.{m}.0.weight"], sd[f"clip_proj2.{m}.0.bias"]),
        (d,),
        sd[f"clip_proj2.{m}.1.weight"],
        sd[f"clip_proj2.{m}.1.bias"],
    )


# LLaMA (Meta layout, interleaved rotary) ---------------------------------------------------
def _rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    # x [B, H, S, hd]: dims (2k, 2k+1) form one complex number, as in Meta's apply_rotary_emb.
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs).flatten(-2).type_as(x)


def llm_logits(sd: dict, h: torch.Tensor, heads: int) -> torch.Tensor:
    s, hd = h.shape[1], h.shape[2] // heads
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.polar(torch.ones(s, hd // 2), torch.outer(torch.arange(s).float(), inv))
    mask = torch.full((s, s), float("-inf")).triu(1)
    i = 0
    while f"layers.{i}.attention.wq.weight" in sd:
        h = llama_block(sd, f"layers.{i}.", h, heads, freqs, mask)
        i += 1
    return F.linear(rms_norm(h, sd["norm.weight"]), sd["output.weight"])


def official_logits(
    sd: dict,
    modality: str,
    x: torch.Tensor,
    text_ids: list[int],
    *,
    llm_heads: int,
    clip_heads: int,
    upm_heads: int,
    centers: int = 0,
) -> torch.Tensor:
    """Logits [1, S, V] of [BOS, start_tag, Q tokens, end_tag, text] for one sample."""
    sd = {k.removeprefix("llma."): v.float() for k, v in sd.items()}
    tokens = upm(sd, modality, features(sd, modality, x, clip_heads, centers), upm_heads)
    emb = sd["tok_embeddings.weight"][torch.tensor([[1] + text_ids])]
    h = torch.cat([emb[:, :1], sd[f"start_tag.{modality}"], tokens, sd[f"end_tag.{modality}"], emb[:, 1:]], 1)
    return llm_logits(sd, h, llm_heads)
