"""`onellm data ...`: `synth` (the synthetic world), `convert` (your files or public datasets
-> manifests), `merge` (manifests -> one), `check` (does every file load?) and `shards`
(manifests -> streamed litdata datasets, or WebDataset tar shards)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from .converters.cli import add_convert_parser


def _synth(args: argparse.Namespace) -> int:
    from .manifest import read_manifest
    from .synth.world import synthesize_world

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    scenes = (
        None if args.scenes is None else [s.strip() for s in args.scenes.split(",") if s.strip() not in ("", "none")]
    )
    manifests = synthesize_world(
        Path(args.out),
        per_modality=args.per_modality,
        seed=args.seed,
        modalities=modalities,
        workers=args.workers,
        scenes=scenes,
    )
    for name, path in manifests.items():
        splits = Counter(s.split for s in read_manifest(path))
        counts = " ".join(f"{split}={n}" for split, n in sorted(splits.items()))
        print(f"{name:<12} {sum(splits.values()):>6}  {counts:<28} {path}")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from .shards import pack_shards
    from .streamed import write_streamed

    status = 0
    for manifest in args.manifests:
        out = Path(args.out) / Path(manifest).stem if len(args.manifests) > 1 else Path(args.out)
        if args.format == "tar":
            packed = pack_shards(manifest, out, samples_per_shard=args.samples_per_shard)
            print(f"{manifest} -> {len(list(packed.parent.glob('*.tar')))} shards, manifest {packed}")
            continue
        report = write_streamed(manifest, out, chunk_bytes=args.chunk_bytes)
        splits = " ".join(f"{split}={n}" for split, n in sorted(report["written"].items()))
        chunk = report["per_chunk"].get("train")
        block = (
            f", about {chunk} samples per chunk (--data.shuffle_block {chunk} from an object store)" if chunk else ""
        )
        print(f"{manifest} -> {out} ({splits}{block}); train with `streamed: {out}` in a dataset entry")
        if report["skipped"]:
            status = 2
            print(f"{manifest}: {report['skipped']} sample(s) left out, their files unreadable, e.g.", file=sys.stderr)
            for problem in report["problems"]:
                print(f"  {problem}", file=sys.stderr)
    return status


def _merge(args: argparse.Namespace) -> int:
    from .merge import merge_manifests

    counts = merge_manifests(args.manifests, args.out, prefix_ids=args.prefix_ids)
    total: Counter = sum(counts.values(), Counter())
    for name, count in [*counts.items(), (args.out, total)]:
        by_split: Counter = Counter()
        for (_, split), n in count.items():
            by_split[split] += n
        splits = " ".join(f"{split}={by_split[split]}" for split in sorted(by_split))
        modalities = ",".join(sorted({m for m, _ in count}))
        print(f"{sum(count.values()):>7}  {modalities:<16} {splits:<30} {name}")
    if len({m for m, _ in total}) > 1:
        print(f"note: {args.out} mixes modalities; a training dataset entry reads one modality", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import SHOWN, check_manifests

    report = check_manifests(args.manifests, model=args.model, limit=args.limit, workers=args.workers)
    print(report.table())
    for note in report.notes:
        print(f"note: {note}")
    if not report.bad:
        unchecked = len(report.samples) - report.checked
        print(
            f"all {report.checked} checked samples load" + (f" ({unchecked} left out by --limit)" if unchecked else "")
        )
        return 0
    print(
        f"{len(report.bad)} of {report.checked} checked samples do not load"
        + (f" (first {SHOWN}):" if len(report.bad) > SHOWN else ":")
    )
    for sample_id, reason in report.bad[:SHOWN]:
        print(f"  {sample_id}: {reason}")
    print(
        f"onellm data check: {len(report.bad)} of {report.checked} samples do not load (first: {report.bad[0][1]})",
        file=sys.stderr,
    )
    return 1


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `data` (with its own subcommands) to the top-level `onellm` parser."""
    data = subparsers.add_parser("data", help="make or inspect datasets")
    sub = data.add_subparsers(dest="data_command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic eight-modality world and its manifests")
    synth.add_argument("--out", required=True, help="folder for the files and the <modality>.jsonl manifests")
    synth.add_argument("--per-modality", type=int, default=100, help="samples per modality (default: 100)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--modalities", help="comma-separated names (default: every modality with a synthesizer)")
    synth.add_argument(
        "--scenes",
        help="comma-separated scenes of several inputs per sample, or 'none' (default: "
        "every scene whose modalities are written, e.g. audiovisual: a video with "
        "its soundtrack)",
    )
    synth.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    synth.set_defaults(func=_synth)
    shards = sub.add_parser(
        "shards",
        help="pack manifests and their files for streaming: litdata chunks (to train with) or WebDataset tar shards",
    )
    shards.add_argument("manifests", nargs="+", help="<modality>.jsonl manifests")
    shards.add_argument(
        "--out", required=True, help="folder for the packed data (one sub-folder per manifest when several)"
    )
    shards.add_argument(
        "--format",
        choices=("litdata", "tar"),
        default="litdata",
        help="litdata: one chunked dataset per split, <out>/<split>/, for `streamed:` dataset entries "
        "(default); tar: WebDataset-style shards and a manifest pointing into them",
    )
    shards.add_argument("--chunk-bytes", default="64MB", help="litdata chunk size (default 64MB)")
    shards.add_argument("--samples-per-shard", type=int, default=1000, help="tar: samples per shard")
    shards.set_defaults(func=_shards)
    add_convert_parser(sub)
    merge = sub.add_parser("merge", help="join manifests into one, paths rewritten relative to it (`cat` breaks them)")
    merge.add_argument("manifests", nargs="+", help=".jsonl manifests, from any folders")
    merge.add_argument("--out", required=True, help="the manifest to write; every path in it is relative to its folder")
    merge.add_argument(
        "--prefix-ids",
        action="store_true",
        help="put '<manifest name>/' before every id (else an id in two inputs is an error)",
    )
    merge.set_defaults(func=_merge)
    check = sub.add_parser("check", help="load every sample's files as training will; counts and problems")
    check.add_argument("manifests", nargs="+", help=".jsonl manifests, or streamed folders from `data shards`")
    check.add_argument(
        "--model",
        default="tiny",
        help="preset or save_pretrained folder whose input shapes to load to (default: tiny, all built-in modalities)",
    )
    check.add_argument(
        "--limit", type=int, help="load only the first N samples of each manifest or streamed split (all are counted)"
    )
    check.add_argument("--workers", type=int, default=0, help="loader processes (default: 0, load here)")
    check.set_defaults(func=_check)
    return data
