"""Training throughput per modality and peak memory, per preset (one process per preset,
so each peak is that preset's own).

A step is forward + backward + AdamW on the preset's default trainable parameters, over a
batch of preprocessed inputs and 60-byte captions; loading files is not included (see the
loader figures in docs/results.md). Reports the median samples/s over the timed steps.

    python benchmarks/bench_train.py --preset tiny --batch 16
    python benchmarks/bench_train.py --preset smollm2 --batch 4
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from onellm.model.onellm import OneLLM
from onellm.processor import PLACEHOLDER


def bench(preset: str, batch: int, steps: int) -> None:
    model = OneLLM.from_pretrained(preset).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    text = model.processor(
        [PLACEHOLDER] * batch, answers=["a small red circle on the left of a grey background"] * batch
    )
    print(
        f"{preset}: {sum(p.numel() for p in params) / 1e6:.1f} M trainable of "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M, batch {batch}, torch threads {torch.get_num_threads()}"
    )
    print("| modality | samples/s | ms/step |\n|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for modality, tokenizer in model.tokenizers.items():
        x = tokenizer.example_input(batch, generator)
        times = []
        for step in range(steps + 2):
            start = time.perf_counter()
            loss = model(**text, modality=modality, inputs=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step >= 2:  # the first steps allocate optimizer state and warm caches
                times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        print(f"| {modality} | {batch / ms * 1e3:.1f} | {ms:.0f} |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    bench(args.preset, args.batch, args.steps)
