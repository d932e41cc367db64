"""Training step per modality at the "tiny-official" configuration: our model against the
published forward's math, at 1 and 2 torch threads.

The configuration is the published one scaled down (CLIP 64 wide x 2 layers at 224 px,
3 experts x 8 resampler layers, 30 queries, LLaMA 64 wide x 2 layers with the 32000-word
vocabulary) and the published inputs (15 video frames, 128 x 1024 mel, 8192 points, 400 IMU
samples, 15724 voxels). A step is forward + cross-entropy + backward over a batch of 2 with
16 text tokens; everything but CLIP trains.

The baseline is tests/official_reference.py: the published forward written in plain torch
on the official state dict, with the original's structure (every expert runs the whole
sequence, one expert after another; the router reads every token; farthest point sampling
as a loop of torch ops). It stands in for the original code, which cannot run on a CPU as
published: its attention is flash-attn's CUDA kernel. So the stand-in's attention is
torch's fused CPU kernel (scaled_dot_product_attention) by default, the nearest thing the
original would run here; `--baseline-attention math` gives it a plain softmax(QK^T)V
instead, as earlier versions of this benchmark did. Both run in this process, alternating,
on the same weights (converted with to_official); figures are medians of the timed steps
after a warm-up.

"kernels" is the time one profiled step of ours spends inside matrix-product, attention
and convolution kernels: the published math's arithmetic, which no rewrite around those
kernels can skip. "ceiling" = published math / kernels is the largest ratio reachable
with them, were everything else (norms, activations, the loss, copies, autograd) free.

    python benchmarks/bench_official_step.py --threads 1 2 --steps 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from onellm.config import OneLLMConfig
from onellm.convert.official import official_names, to_official
from onellm.model.onellm import OneLLM

_spec = importlib.util.spec_from_file_location(
    "official_reference", Path(__file__).resolve().parents[1] / "tests" / "official_reference.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

WIDTH, HEADS, BATCH, TEXT = 64, 4, 2, 16


def tiny_official() -> OneLLMConfig:
    config = OneLLMConfig.from_preset("onellm-7b")
    config.encoder.width, config.encoder.layers, config.encoder.heads = WIDTH, 2, HEADS
    config.upm.heads = HEADS
    config.llm.random_init.update(
        hidden_size=WIDTH,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
    )
    config.train_llm = True
    return config


def ours_step(model: OneLLM, modality: str, x: torch.Tensor, batch: dict) -> float:
    start = time.perf_counter()
    model(**batch, modality=modality, inputs=x, loss_only=True).loss.backward()
    return time.perf_counter() - start


# Kernels doing the published math's multiply-adds (self time, children excluded).
_KERNELS = ("mm", "bmm", "addmm", "baddbmm", "convolution", "_scaled_dot_product_flash_attention_for_cpu")


def kernel_seconds(step: Callable[[], float]) -> float:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    return (
        sum(
            e.self_cpu_time_total
            for e in profile.key_averages()
            if e.key.removeprefix("aten::").removesuffix("_backward") in _KERNELS
            or e.key.startswith("aten::mkldnn_convolution")
        )
        / 1e6
    )


def reference_step(sd: dict, theirs: str, x: torch.Tensor, text: torch.Tensor, centers: int) -> float:
    start = time.perf_counter()
    tokens = reference.upm(sd, theirs, reference.features(sd, theirs, x, HEADS, centers), HEADS)
    b = x.shape[0]
    emb = sd["tok_embeddings.weight"][text]
    h = torch.cat(
        [
            emb[:, :1],
            sd[f"start_tag.{theirs}"].expand(b, -1, -1),
            tokens,
            sd[f"end_tag.{theirs}"].expand(b, -1, -1),
            emb[:, 1:],
        ],
        1,
    )
    logits = reference.llm_logits(sd, h, HEADS)
    answer = text.shape[1] - 1
    F.cross_entropy(logits[:, -answer - 1 : -1].flatten(0, 1), text[:, 1:].flatten()).backward()
    return time.perf_counter() - start


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per code and modality (after one warm-up)")
    parser.add_argument("--modalities", nargs="+", help="default: all eight")
    parser.add_argument(
        "--baseline-attention",
        choices=("sdpa", "math"),
        default="sdpa",
        help="the stand-in's attention kernel (the original's is flash-attn, CUDA only)",
    )
    args = parser.parse_args()
    if args.baseline_attention == "sdpa":
        reference._attention = fused_attention

    torch.manual_seed(0)
    model = OneLLM(tiny_official()).train()
    sd = {
        k.removeprefix("llma."): v.float().clone().requires_grad_(not k.startswith("llma.clip."))
        for k, v in to_official(model).items()
    }
    theirs = {ours: name for name, ours in official_names().items()}
    answer = "x" * (TEXT - 1)
    batch = model.processor(["<modality>"] * BATCH, answers=[answer] * BATCH)
    text = torch.randint(3, 32000, (BATCH, TEXT))
    generator = torch.Generator().manual_seed(0)
    modalities = args.modalities or model.modalities
    inputs = {m: model.tokenizers[m].example_input(BATCH, generator) for m in modalities}
    centers = model.config.modalities["point"]["centers"]
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(
            f"\ntorch threads {torch.get_num_threads()}, batch {BATCH}, {TEXT} text tokens, "
            f"baseline attention {args.baseline_attention}, median of {args.steps} steps (ms)"
        )
        print("| modality | ours | published math | ratio | ours in kernels | ceiling |\n|---|---|---|---|---|---|")
        ratios = []
        for m in modalities:
            x = inputs[m]
            ours, base = [], []
            for step in range(args.steps + 1):
                model.zero_grad(set_to_none=True)
                t_ours = ours_step(model, m, x, batch)
                for v in sd.values():
                    v.grad = None
                t_base = reference_step(sd, theirs[m], x, text, centers)
                if step:
                    ours.append(t_ours)
                    base.append(t_base)
            a, b = statistics.median(ours), statistics.median(base)
            ratios.append(b / a)
            model.zero_grad(set_to_none=True)
            kernels = kernel_seconds(lambda: ours_step(model, m, x, batch))
            print(
                f"| {m} | {a * 1e3:.0f} | {b * 1e3:.0f} | {b / a:.2f} | {kernels * 1e3:.0f} | {b / kernels:.2f} |",
                flush=True,
            )
        geo = statistics.geometric_mean(ratios)
        print(f"| geo-mean | | | {geo:.2f} |")


if __name__ == "__main__":
    main()
