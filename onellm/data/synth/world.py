"""The synthetic world: every registered modality that brings a synthesizer writes its
samples under `out/<modality>/` and a manifest `out/<modality>.jsonl`.

Nothing here knows a modality by name, so plugins (the ECG example) get a world too.
Each sample draws from its own generator seeded by (seed, modality number, index), so the
world is the same whatever the number of workers or the order the samples are made in."""
from __future__ import annotations

import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..manifest import SPLITS, Sample, write_manifest

Synthesizer = Callable[[Path, str, np.random.Generator], dict[str, Any]]


def modality_number(name: str) -> int:
    """Stable across processes and runs, unlike Python's salted hash()."""
    return zlib.crc32(name.encode("utf-8"))


def sample_rng(seed: int, modality: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, modality_number(modality), index])


_GOLDEN = (5**0.5 - 1) / 2


def assign_split(seed: int, modality: str, index: int, fractions: Sequence[float]) -> str:
    """The split of sample `index`: a golden-ratio sequence from a per-(seed, modality) offset
    spreads the splits evenly, so even a world of a dozen samples has every split of 10% or
    more, and a sample keeps its split when the world grows."""
    offset = zlib.crc32(f"{seed}:{modality}".encode("utf-8")) / 2**32
    u = (offset + index * _GOLDEN) % 1.0
    edges = np.cumsum(fractions) / np.sum(fractions)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), len(SPLITS) - 1)]


def _make(job: tuple[Synthesizer, Path, str, str, int, int]) -> dict[str, Any]:
    synth, folder, modality, sample_id, seed, index = job
    fields = synth(folder, sample_id, sample_rng(seed, modality, index))
    missing = {"files", "caption"} - set(fields)
    if missing or not fields["files"]:
        raise ValueError(f"{modality} synthesizer returned no {sorted(missing) or ['files']} for {sample_id}")
    return fields


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from a clean server process that has imported onellm (and so torch)
    once, rather than from this process, which may hold torch and open3d thread pools."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def synthesizable_modalities() -> list[str]:
    from ...registry import get_modality, list_modalities

    return [m for m in list_modalities() if get_modality(m).synthesize is not None]


def synthesize_world(
    out: Path | str,
    per_modality: int = 100,
    seed: int = 0,
    modalities: list[str] | None = None,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """Write `per_modality` samples of each modality and its manifest; returns
    {modality: manifest path}."""
    from ...registry import get_modality

    if len(split_fractions) != len(SPLITS) or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be {len(SPLITS)} non-negative numbers ({'/'.join(SPLITS)})")
    out = Path(out)
    names = synthesizable_modalities() if modalities is None else list(modalities)
    jobs: dict[str, list[tuple[Synthesizer, Path, str, str, int, int]]] = {}
    for name in names:
        synth = get_modality(name).synthesize
        if synth is None:
            raise ValueError(f"modality {name!r} has no synthesizer; these do: {', '.join(synthesizable_modalities())}")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        jobs[name] = [(synth, folder, name, f"{name}-{i:06d}", seed, i) for i in range(per_modality)]

    manifests = {}
    pool = ProcessPoolExecutor(workers, mp_context=_worker_context()) if workers > 1 else None
    try:
        for name, todo in jobs.items():
            results = pool.map(_make, todo, chunksize=max(1, len(todo) // (8 * workers))) if pool else map(_make, todo)
            samples = []
            for (_, _, _, sample_id, _, index), fields in tqdm(
                zip(todo, results), total=len(todo), desc=f"synth {name}", unit="sample", disable=not progress
            ):
                samples.append(Sample(
                    id=sample_id,
                    modality=name,
                    files=[(Path(name) / f).as_posix() for f in fields["files"]],
                    caption=fields["caption"],
                    qa=list(fields.get("qa", [])),
                    split=assign_split(seed, name, index, split_fractions),
                    meta=dict(fields.get("meta", {})),
                ))
            manifests[name] = out / f"{name}.jsonl"
            write_manifest(manifests[name], samples)
    finally:
        if pool:
            pool.shutdown()
    return manifests
