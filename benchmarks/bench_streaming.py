"""Streamed training data at scale: does memory stay flat as the dataset grows, and does the
loader keep ahead of tiny training?

For each size N, writes a manifest of N image samples (one real PNG each, with its own
caption), packs it with `onellm data shards` (litdata chunks), and then, in a fresh process,
builds the training input path exactly as a stage does (StreamedSamples -> SeededSamples ->
ReplayBatchSampler -> DataLoader with the training collate) and draws batches from it.
Reported: resident memory (VmRSS, and RssAnon: the process's own memory, without the
chunk files' pages the OS maps in and can drop), the loader's samples/s, and beside them
the same numbers for the in-memory manifest path (one Python Sample per row).

`--compare N` measures the two engines the issue named on the same N samples: litdata
(write, read in order, read shuffled, jump to 90% as a resume does) against WebDataset tar
shards (write, read in order, reach 90% by reading through: WebDataset has no random access).

    python benchmarks/bench_streaming.py --out /tmp/streamed --sizes 10000 100000 1000000
    python benchmarks/bench_streaming.py --out /tmp/streamed --compare 200000   # needs .[bench]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from onellm.data.streamed import write_streamed

COLOURS = ["red", "green", "blue", "yellow", "pink", "white"]


def png_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.kron(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def write_manifest_of(folder: Path, n: int) -> Path:
    """N rows over 64 distinct PNGs, each row its own id and caption, written line by line."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for k in range(64):
        (folder / "images" / f"{k}.png").write_bytes(png_bytes(k))
    manifest = folder / "image.jsonl"
    with manifest.open("w") as f:
        for i in range(n):
            row = {
                "id": f"img-{i:08d}",
                "modality": "image",
                "files": [f"images/{i % 64}.png"],
                "caption": f"a {COLOURS[i % len(COLOURS)]} mosaic number {i}",
                "split": "train",
            }
            f.write(json.dumps(row) + "\n")
    return manifest


def memory(pid: str = "self") -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def workers_anon() -> float:
    """The anonymous memory of this process's children (the DataLoader workers), summed, in
    MB, each page shared since the fork counted in proportion (Pss_Anon): RssAnon would count
    the parent's pages again in every worker, and private counts the chunk files' pages."""
    pids = [pid for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss_Anon:"):
                total += int(line.split()[1])
    return total / 1024


def measure(location: str, in_memory: bool, batches: int, batch: int, workers: int) -> dict:
    """In this process: the stage's input path over one dataset, memory before and after."""
    from torch.utils.data import DataLoader

    from onellm.data.dataset import ManifestDataset
    from onellm.data.manifest import read_manifest
    from onellm.data.streamed import StreamedSamples
    from onellm.modality import LoadContext
    from onellm.model.onellm import OneLLM
    from onellm.training.datamodule import SeededSamples, TextForSamples
    from onellm.training.replay import ReplayBatchSampler

    model = OneLLM.from_pretrained("tiny")
    contexts = {m: LoadContext.of(t) for m, t in model.tokenizers.items()}
    base = memory()
    start = time.perf_counter()
    if in_memory:
        dataset = ManifestDataset(read_manifest(location), contexts, train=True)
    else:
        dataset = StreamedSamples(location, contexts, "image", train=True)
    sampler = ReplayBatchSampler({"image": len(dataset)}, {"image": 1.0}, batch, steps=batches + 1, seed=0)
    loader = DataLoader(
        SeededSamples({"image": dataset}),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=TextForSamples(model.processor, "caption"),
    )
    opened, setup = time.perf_counter() - start, memory()
    batches_it = iter(loader)
    next(batches_it)  # worker start-up and the first chunk
    start, count, workers_mb = time.perf_counter(), 0, 0.0
    for got in batches_it:
        count += len(got["ids"])
        workers_mb = max(workers_mb, workers_anon())
    rate = count / (time.perf_counter() - start)
    return {
        "samples": len(dataset),
        "open_s": opened,
        "samples_per_s": rate,
        "base": base,
        "setup": setup,
        "after": memory(),
        "workers_anon": workers_mb,
    }


def compare(out: Path, n: int) -> None:
    """litdata against WebDataset on N small samples (a PNG and its JSON record each)."""
    import webdataset as wds
    from litdata import StreamingDataset
    from litdata.streaming.writer import BinaryWriter

    png = png_bytes(0)
    rows = [json.dumps({"id": f"s{i:08d}", "caption": f"mosaic {i}"}) for i in range(n)]
    start = time.perf_counter()
    writer = BinaryWriter(str(out / "compare-litdata"), chunk_bytes="64MB")
    for i, row in enumerate(rows):
        writer.add_item(i, {"sample": row, "data": png})
    writer.done()
    writer.merge()
    lit_write = time.perf_counter() - start
    start = time.perf_counter()
    (out / "compare-wds").mkdir(exist_ok=True)
    for first in range(0, n, 10000):
        with tarfile.open(out / "compare-wds" / f"shard-{first // 10000:05d}.tar", "w") as tar:
            for i in range(first, min(n, first + 10000)):
                for name, data in ((f"s{i:08d}.png", png), (f"s{i:08d}.json", rows[i].encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    wds_write = time.perf_counter() - start

    reader = StreamingDataset(str(out / "compare-litdata"), batch_decode="item")
    reads = min(n, 50000)
    start = time.perf_counter()
    for i in range(reads):
        reader[i]
    lit_seq = reads / (time.perf_counter() - start)
    order = random.Random(0).sample(range(n), min(n, 20000))
    start = time.perf_counter()
    for i in order:
        reader[i]
    lit_random = len(order) / (time.perf_counter() - start)
    start = time.perf_counter()
    reader[int(n * 0.9)]
    lit_jump = time.perf_counter() - start

    urls = sorted(str(p) for p in (out / "compare-wds").glob("*.tar"))
    start, seen = time.perf_counter(), 0
    for _ in wds.WebDataset(urls, shardshuffle=False):
        seen += 1
        if seen >= reads:
            break
    wds_seq = seen / (time.perf_counter() - start)
    start, seen = time.perf_counter(), 0
    for _ in wds.WebDataset(urls, shardshuffle=False):
        seen += 1
        if seen > int(n * 0.9):
            break
    wds_jump = time.perf_counter() - start

    def size(folder: str) -> float:
        return sum(p.stat().st_size for p in (out / folder).iterdir()) / 2**20

    print(f"\n{n:,} samples of {len(png)} + ~40 bytes\n")
    print("| engine | write s | size MB | read in order /s | read shuffled /s | resume at 90% |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| litdata | {lit_write:.1f} | {size('compare-litdata'):.0f} | {lit_seq:,.0f} | {lit_random:,.0f} "
        f"| {lit_jump * 1000:.1f} ms (one item read) |"
    )
    print(
        f"| WebDataset | {wds_write:.1f} | {size('compare-wds'):.0f} | {wds_seq:,.0f} | no random access "
        f"| {wds_jump:.1f} s (read through) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a scratch folder (1M samples take ~1.5 GB)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-manifest", action="store_true", help="skip the in-memory manifest rows")
    parser.add_argument("--reuse", action="store_true", help="keep data packed by an earlier run (no packing rate)")
    parser.add_argument("--compare", type=int, help="only compare litdata and WebDataset on this many samples")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.in_memory, args.batches, args.batch, args.workers)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.compare:
        compare(args.out, args.compare)
        return
    from bench_loaders import train_rate  # benchmarks/ is on the path when run as a script

    from onellm.model.onellm import OneLLM

    training = train_rate(OneLLM.from_pretrained("tiny").train(), "image", args.batch, 5)
    rows = []
    for n in args.sizes:
        folder = args.out / f"n{n}"
        manifest, packing = folder / "image.jsonl", None
        if not (args.reuse and (folder / "streamed" / "train" / "index.json").is_file()):
            write_manifest_of(folder, n)
            start = time.perf_counter()
            write_streamed(manifest, folder / "streamed")
            packing = n / (time.perf_counter() - start)
        kinds = [("streamed", str(folder / "streamed" / "train"), [])]
        if not args.no_manifest:
            kinds.append(("manifest in memory", str(manifest), ["--in-memory"]))
        for kind, location, extra in kinds:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--out",
                    str(args.out),
                    "--measure",
                    location,
                    *extra,
                    "--batches",
                    str(args.batches),
                    "--batch",
                    str(args.batch),
                    "--workers",
                    str(args.workers),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((n, kind, packing if kind == "streamed" else None, result))
            print(f"{n:>9,} {kind}: {json.dumps(result)}", file=sys.stderr)
    print(f"\ntiny training, image, batch {args.batch}: {training:.0f} samples/s\n")
    print(
        "Memory in MB. 'dataset' is what building the dataset, sampler and loader added to the "
        "process's own memory (RssAnon); 'main' is RssAnon after the batches, 'workers' the "
        "workers' anonymous memory, pages shared with the main process counted in proportion (Pss_Anon).\n"
    )
    print(
        f"| samples | data path | dataset | main after {args.batches} batches | workers ({args.workers}) | VmRSS | "
        f"setup s | loader samples/s | loader / training | packing samples/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, kind, packing, r in rows:
        added = r["setup"]["RssAnon"] - r["base"]["RssAnon"]
        print(
            f"| {n:,} | {kind} | {added:.0f} | {r['after']['RssAnon']:.0f} | {r['workers_anon']:.0f} | "
            f"{r['after']['VmRSS']:.0f} | {r['open_s']:.1f} | {r['samples_per_s']:.0f} | "
            f"{r['samples_per_s'] / training:.1f} | {'' if packing is None else f'{packing:.0f}'} |"
        )


if __name__ == "__main__":
    main()
