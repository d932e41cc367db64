"""The UPM's experts stacked (weights stacked per layer on the fly, one bmm per product)
vs. plain modules run one expert at a time, as the original implementation does.

Both paths run the same module with the same weights; timed forward only (inference) and
forward + backward (training), alternating, medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from onellm.config import UPMConfig
from onellm.model.upm import UniversalProjection

SHAPES = {  # name: (width, heads, experts, layers, queries, features, batch)
    "smollm2": (256, 4, 3, 2, 16, 65, 8),
    "tiny": (64, 4, 3, 2, 8, 17, 8),
    "tiny-official": (64, 4, 3, 8, 30, 257, 2),
    "onellm-7b-1layer": (1024, 16, 3, 1, 30, 257, 1),
}


def medians_ms(fns, repeats: int) -> list[float]:
    """Each function's median over `repeats` rounds that run them in turn, after a warm-up."""
    times = [[] for _ in fns]
    for round_ in range(repeats + 1):
        for fn, kept in zip(fns, times):
            start = time.perf_counter()
            fn()
            if round_:
                kept.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| shape | pass | stacked ms | plain ms | stacked speed-up |\n|---|---|---:|---:|---:|")
    for name, (w, heads, e, layers, q, n, b) in SHAPES.items():
        cfg = UPMConfig(num_experts=e, layers_per_expert=layers, num_queries=q, heads=heads)
        upm = UniversalProjection(cfg, w, w, []).to(args.device)
        seq = torch.randn(b, q + n, w, device=args.device)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        with torch.no_grad():
            assert torch.allclose(upm.run_experts(seq, stacked=True), upm.run_experts(seq), atol=1e-4)
            infer = medians_ms(
                [lambda: (upm.run_experts(seq, stacked=True), sync()), lambda: (upm.run_experts(seq), sync())],
                args.repeats,
            )

        def train(stacked: bool) -> None:
            upm.zero_grad(set_to_none=True)
            upm.run_experts(seq, stacked=stacked).sum().backward()
            sync()

        trained = medians_ms([lambda: train(True), lambda: train(False)], args.repeats)
        shape = f"{name} E={e} L={layers} W={w} B={b} S={q + n}"
        for label, (stacked, plain) in (("forward", infer), ("forward+backward", trained)):
            print(f"| {shape} | {label} | {stacked:.2f} | {plain:.2f} | {plain / stacked:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
