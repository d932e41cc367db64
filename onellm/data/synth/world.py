"""The synthetic world: every registered modality that brings a synthesizer writes its
samples under `out/<modality>/` and a manifest `out/<modality>.jsonl`; so does every
registered scene (samples of several inputs) whose modalities are all in the world.

Nothing here knows a modality by name, so plugins (the ECG example) get a world too.
Each sample draws from its own generator seeded by (seed, modality number, index), so the
world is the same whatever the number of workers or the order the samples are made in."""

from __future__ import annotations

import multiprocessing
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..manifest import SPLITS, Sample, joined_modality, write_manifest

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
    offset = zlib.crc32(f"{seed}:{modality}".encode()) / 2**32
    u = (offset + index * _GOLDEN) % 1.0
    edges = np.cumsum(fractions) / np.sum(fractions)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), len(SPLITS) - 1)]


def _make(job: tuple[Synthesizer, Path, str, str, int, int]) -> dict[str, Any]:
    synth, folder, modality, sample_id, seed, index = job
    fields = synth(folder, sample_id, sample_rng(seed, modality, index))
    media = "inputs" if "inputs" in fields else "files"
    missing = {media, "caption"} - set(fields)
    if missing or not fields[media]:
        raise ValueError(f"{modality} synthesizer returned no {sorted(missing) or [media]} for {sample_id}")
    return fields


def _sample(name: str, sample_id: str, fields: dict[str, Any], split: str) -> Sample:
    """The manifest sample of a synthesizer's fields, its files under the folder `name`."""

    def under(files: list[str]) -> list[str]:
        return [(Path(name) / f).as_posix() for f in files]

    inputs = [{**i, "files": under(i["files"])} for i in fields.get("inputs", [])]
    return Sample(
        id=sample_id,
        modality=joined_modality(i["modality"] for i in inputs) if inputs else name,
        files=list(dict.fromkeys(f for i in inputs for f in i["files"])) if inputs else under(fields["files"]),
        caption=fields["caption"],
        qa=list(fields.get("qa", [])),
        split=split,
        meta=dict(fields.get("meta", {})),
        inputs=inputs,
    )


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from a clean server process that has imported onellm (and so torch)
    once, rather than from this process, which may hold torch and open3d thread pools."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def synthesizable_modalities() -> list[str]:
    from ...registry import get_modality, list_modalities

    return [m for m in list_modalities() if get_modality(m).synthesize is not None]


def scenes_for(modalities: list[str]) -> list[str]:
    """The registered scenes whose modalities are all among `modalities`."""
    from ...registry import SCENES

    return [name for name, scene in SCENES.items().items() if set(scene.modalities) <= set(modalities)]


def synthesize_world(
    out: Path | str,
    per_modality: int = 100,
    seed: int = 0,
    modalities: list[str] | None = None,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    workers: int = 1,
    progress: bool = True,
    scenes: list[str] | None = None,
) -> dict[str, Path]:
    """Write `per_modality` samples of each modality and of each scene, and their manifests;
    returns {modality or scene: manifest path}. `scenes`: default, every registered scene
    whose modalities the world has."""
    from ...registry import SCENES, get_modality

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
    for name in scenes_for(names) if scenes is None else scenes:
        if name in names:
            raise ValueError(f"scene {name!r} has a modality's name")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        synth = SCENES.get(name).synthesize
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
                samples.append(_sample(name, sample_id, fields, assign_split(seed, name, index, split_fractions)))
            manifests[name] = out / f"{name}.jsonl"
            write_manifest(manifests[name], samples)
    finally:
        if pool:
            pool.shutdown()
    return manifests
