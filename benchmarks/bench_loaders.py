"""Training loaders vs. training steps, per modality: can the files be read as fast as the
tiny preset trains on them?

Loads the synthetic world's train split through ManifestDataset (training augmentation on)
with a DataLoader of N workers, and reports samples/s beside the tiny preset's training
samples/s on preprocessed batches of the same size.

    onellm data synth --out data/synth --per-modality 200
    python benchmarks/bench_loaders.py --data data/synth --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from onellm.data.dataset import ManifestDataset
from onellm.data.manifest import read_manifest
from onellm.model.onellm import OneLLM
from onellm.processor import PLACEHOLDER


def loader_rate(dataset: ManifestDataset, batch: int, workers: int, batches: int) -> float:
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=list, persistent_workers=False
    )
    it = iter(loader)
    next(it)  # worker start-up and first imports
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        try:
            count += len(next(it))
        except StopIteration:
            break
    return count / (time.perf_counter() - start)


def train_rate(model: OneLLM, modality: str, batch: int, steps: int) -> float:
    x = model.tokenizers[modality].example_input(batch)
    text = model.processor([PLACEHOLDER] * batch, answers=["a small red circle on the left"] * batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        model(**text, modality=modality, inputs=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder of <modality>.jsonl manifests")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    model = OneLLM.from_pretrained("tiny").train()
    print(f"| modality | loader samples/s ({args.workers} workers) | tiny training samples/s | ratio |")
    print("|---|---|---|---|")
    for modality, tokenizer in model.tokenizers.items():
        manifest = args.data / f"{modality}.jsonl"
        if not manifest.is_file():
            continue
        samples = [s for s in read_manifest(manifest) if s.split == "train"]
        dataset = ManifestDataset(samples, {modality: tokenizer}, train=True)
        loading = loader_rate(dataset, args.batch, args.workers, args.batches)
        training = train_rate(model, modality, args.batch, 5)
        print(f"| {modality} | {loading:.0f} | {training:.0f} | {loading / training:.1f} |")


if __name__ == "__main__":
    main()
