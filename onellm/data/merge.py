"""`onellm data merge`: manifests into one, every file path rewritten to reach the same file
from the new manifest's folder (a plain `cat` would leave them relative to the old ones)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from .manifest import Sample, read_manifest, write_manifest


def merge_manifests(inputs: list[Path | str], out: Path | str, prefix_ids: bool = False) -> dict[str, Counter]:
    """Write `out` with the samples of `inputs` in order; returns each input's sample counts
    by (modality, split). An id found in two inputs is an error unless `prefix_ids` puts
    "<input stem>/" before every id. All inputs are read first, so `out` may be one of them."""
    merged: list[Sample] = []
    counts: dict[str, Counter] = {}
    first_seen: dict[str, Path] = {}
    for path in map(Path, inputs):
        if str(path) in counts:
            raise ValueError(f"{path}: given twice")
        samples = read_manifest(path)
        if prefix_ids:
            samples = [replace(s, id=f"{path.stem}/{s.id}") for s in samples]
        for s in samples:
            other = first_seen.setdefault(s.id, path)
            if other != path:
                fix = (
                    "rename one of the files (their names prefix the ids)"
                    if prefix_ids
                    else "give --prefix-ids to prefix each id with its manifest's name"
                )
                raise ValueError(f"{path}: id {s.id!r} is also in {other}; {fix}")
        counts[str(path)] = Counter((s.modality, s.split) for s in samples)
        merged += samples
    write_manifest(out, merged)
    return counts
