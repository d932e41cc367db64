"""`onellm data ...`: `synth` (the synthetic world), `convert` (public datasets -> manifests)
and `shards` (manifests -> tar shards)."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .converters.cli import add_convert_parser


def _synth(args: argparse.Namespace) -> int:
    from .manifest import read_manifest
    from .synth.world import synthesize_world

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    manifests = synthesize_world(
        Path(args.out), per_modality=args.per_modality, seed=args.seed, modalities=modalities, workers=args.workers
    )
    for name, path in manifests.items():
        splits = Counter(s.split for s in read_manifest(path))
        counts = " ".join(f"{split}={n}" for split, n in sorted(splits.items()))
        print(f"{name:<10} {sum(splits.values()):>6}  {counts:<28} {path}")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from .shards import pack_shards

    for manifest in args.manifests:
        out = Path(args.out) / Path(manifest).stem if len(args.manifests) > 1 else Path(args.out)
        packed = pack_shards(manifest, out, samples_per_shard=args.samples_per_shard)
        print(f"{manifest} -> {len(list(packed.parent.glob('*.tar')))} shards, manifest {packed}")
    return 0


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `data` (with its own subcommands) to the top-level `onellm` parser."""
    data = subparsers.add_parser("data", help="make or inspect datasets")
    sub = data.add_subparsers(dest="data_command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic eight-modality world and its manifests")
    synth.add_argument("--out", required=True, help="folder for the files and the <modality>.jsonl manifests")
    synth.add_argument("--per-modality", type=int, default=100, help="samples per modality (default: 100)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--modalities", help="comma-separated names (default: every modality with a synthesizer)")
    synth.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    synth.set_defaults(func=_synth)
    shards = sub.add_parser("shards", help="pack manifests and their files into WebDataset-style tar shards")
    shards.add_argument("manifests", nargs="+", help="<modality>.jsonl manifests")
    shards.add_argument("--out", required=True,
                        help="folder for the shards and the packed manifest (one sub-folder per manifest when several)")
    shards.add_argument("--samples-per-shard", type=int, default=1000)
    shards.set_defaults(func=_shards)
    add_convert_parser(sub)
    return data
