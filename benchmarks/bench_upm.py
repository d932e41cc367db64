"""The UPM's experts computed together vs. E sequential passes (one expert at a time).

Both paths run the same module with the same weights; the sequential one passes the
sequence through one expert at a time, as the original implementation does.
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
    "onellm-7b-1layer": (1024, 16, 3, 1, 30, 257, 1),
}


def together(upm: UniversalProjection, seq: torch.Tensor) -> torch.Tensor:
    return upm.run_experts(seq)


def one_by_one(upm: UniversalProjection, seq: torch.Tensor) -> torch.Tensor:
    return torch.cat([upm.run_experts(seq, slice(e, e + 1)) for e in range(upm.config.num_experts)])


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| shape | batched ms | sequential ms | speed-up |\n|---|---:|---:|---:|")
    for name, (w, heads, e, layers, q, n, b) in SHAPES.items():
        cfg = UPMConfig(num_experts=e, layers_per_expert=layers, num_queries=q, heads=heads)
        upm = UniversalProjection(cfg, w, w, []).to(args.device).eval()
        seq = torch.randn(b, q + n, w, device=args.device)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        with torch.no_grad():
            assert torch.allclose(together(upm, seq), one_by_one(upm, seq), atol=1e-4)
            batched = median_ms(lambda: (together(upm, seq), sync()), args.repeats)
            apart = median_ms(lambda: (one_by_one(upm, seq), sync()), args.repeats)
        print(f"| {name} E={e} L={layers} W={w} B={b} S={q + n} | {batched:.2f} | {apart:.2f} | {apart / batched:.2f}x |")


if __name__ == "__main__":
    main()
