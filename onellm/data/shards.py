"""WebDataset-style tar shards: a manifest's samples packed into `shard-NNNNN.tar` files.

A sample with key k is stored as the members `k.<ext>` (its files, in manifest order) and
`k.json` (its manifest fields, `files` naming those members). The packed manifest's files
read "shard-00000.tar#k.png"; `materialized(paths)` turns such paths into MemoryFiles for the
loaders, and `iter_shard_samples` streams a shard front to back, for data on a pipe or
object store where seeking is not possible.

For training on more data than fits one manifest in memory, `onellm data shards` writes the
litdata format instead (see streamed.py); these tar shards stay for WebDataset tools."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from ..errors import BadInputError
from ..sources import FileSource, MemoryFile
from .manifest import Sample, read_manifest, sample_from_json, write_manifest

SEPARATOR = "#"
SHARD_NAME = "shard-{:05d}.tar"

# Per process: {tar path: {member name: (data offset, size)}}; a forked DataLoader worker
# inherits it (still valid).
_index: dict[str, dict[str, tuple[int, int]]] = {}


def split_shard_path(path: str | os.PathLike) -> tuple[Path, str] | None:
    """("dir/shard-00000.tar", "k.png") for "dir/shard-00000.tar#k.png"; None for a plain path."""
    text = os.fspath(path)
    tar, sep, member = text.rpartition(SEPARATOR)
    if not sep or not tar.endswith(".tar") or not member:
        return None
    return Path(tar), member


def member_names(key: str, files: list[str]) -> list[str]:
    """`key.<ext>` with the file's full suffix ("depth.png": loaders tell maps by it); a
    suffix already taken within the sample gets the file's position in front."""
    names: list[str] = []
    for i, file in enumerate(files):
        base = Path(file.rpartition(SEPARATOR)[2]).name
        ext = base.split(".", 1)[1] if "." in base.lstrip(".") else "bin"
        if ext == "json" or f"{key}.{ext}" in names:
            ext = f"{i}.{ext}"
        names.append(f"{key}.{ext}")
    return names


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # fixed mtime: identical input, identical shards
    tar.addfile(info, io.BytesIO(data))


def pack_shards(manifest: Path | str, out_dir: Path | str, samples_per_shard: int = 1000) -> Path:
    """Pack a manifest's samples into tar shards under `out_dir`; returns the manifest
    written beside them (same file name), whose files point into the shards."""
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
    manifest, out_dir = Path(manifest), Path(out_dir)
    out_manifest = out_dir / manifest.name
    if out_manifest.resolve() == manifest.resolve():
        raise ValueError(f"{out_manifest}: packing would overwrite its own manifest; choose another out_dir")
    samples = read_manifest(manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    packed, keys = [], set()
    bar = tqdm(total=len(samples), desc=f"packing {manifest.name}", unit="sample", leave=False)
    for first in range(0, len(samples), samples_per_shard):
        shard = SHARD_NAME.format(first // samples_per_shard)
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{shard}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for sample in samples[first : first + samples_per_shard]:
                    key = unique_key(sample.id, keys)
                    members = member_names(key, sample.files)
                    for path, member in zip(sample.paths(), members):
                        _add(tar, member, read_source(path))
                    row = sample.with_files(dict(zip(sample.files, members)))
                    _add(tar, f"{key}.json", json.dumps(row, ensure_ascii=False).encode())
                    inside = {f: f"{shard}{SEPARATOR}{m}" for f, m in zip(sample.files, members)}
                    packed.append(sample_from_json(sample.with_files(inside)))
                    bar.update()
            os.replace(tmp, out_dir / shard)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    bar.close()
    write_manifest(out_manifest, packed)
    return out_manifest


def unique_key(sample_id: str, taken: set[str]) -> str:
    # WebDataset splits a member name at its first dot: keys keep no dots or slashes.
    key = re.sub(r"[^A-Za-z0-9_-]", "_", sample_id) or "sample"
    candidate, n = key, 1
    while candidate in taken:
        candidate, n = f"{key}_{n}", n + 1
    taken.add(candidate)
    return candidate


def read_source(path: Path) -> bytes:
    inside = split_shard_path(path)
    if inside is not None:
        return read_member(*inside)
    try:
        return path.read_bytes()
    except OSError as err:
        raise BadInputError(path, f"cannot read it for packing ({err.strerror or err})") from err


def shard_index(tar_path: Path) -> dict[str, tuple[int, int]]:
    """Member name -> (data offset, size), read once per process by walking the headers."""
    key = str(tar_path.resolve())
    if key in _index:
        return _index[key]
    if not tar_path.is_file():
        raise BadInputError(tar_path, "no such shard")
    length = tar_path.stat().st_size
    index = {}
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for info in tar:
                if info.isfile():
                    if info.offset_data + info.size > length:
                        raise BadInputError(
                            tar_path, f"truncated shard: member {info.name} ends past the end of the file"
                        )
                    index[info.name] = (info.offset_data, info.size)
            end = tar.offset
    except tarfile.TarError as err:
        raise BadInputError(tar_path, f"not a readable tar shard ({err})") from err
    # tarfile stops quietly at a bad header past the first one; a whole archive ends in two zero blocks.
    with tar_path.open("rb") as f:
        f.seek(end)
        if f.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
            raise BadInputError(tar_path, f"truncated shard or corrupted header at byte {end}")
    _index[key] = index
    return index


def read_member(tar_path: Path | str, member: str) -> bytes:
    tar_path = Path(tar_path)
    index = shard_index(tar_path)
    if member not in index:
        raise BadInputError(f"{tar_path}{SEPARATOR}{member}", f"no such member (the shard has {len(index)} members)")
    offset, size = index[member]
    with tar_path.open("rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise BadInputError(f"{tar_path}{SEPARATOR}{member}", f"truncated: {len(data)} of {size} bytes")
    return data


def materialized(paths: Iterable[Path]) -> list[FileSource]:
    """What the loaders read for `paths`: a shard member's bytes as a MemoryFile (named as
    the member, whose suffix the loaders go by); plain paths unchanged."""
    out: list[FileSource] = []
    for path in paths:
        inside = split_shard_path(path)
        out.append(path if inside is None else MemoryFile(inside[1], read_member(*inside), str(path)))
    return out


def iter_shard_samples(shards: Iterable[Path | str | IO[bytes]]) -> Iterator[tuple[Sample, list[bytes]]]:
    """(sample, bytes of each of its files in order) from shards read sequentially, without
    seeking: paths or readable binary streams (a pipe, an HTTP response body)."""
    for shard in shards:
        if isinstance(shard, (str, os.PathLike)):
            path = Path(shard)
            if not path.is_file():
                raise BadInputError(path, "no such shard")
            with path.open("rb") as f:
                yield from _stream(f, path.name, path.parent.absolute())
        else:
            yield from _stream(shard, str(getattr(shard, "name", "<stream>")), None)


def _stream(f: IO[bytes], name: str, root: Path | None) -> Iterator[tuple[Sample, list[bytes]]]:
    group: dict[str, bytes] = {}
    key = None
    try:
        with tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                member_key = Path(info.name).name.split(".", 1)[0]
                if key is not None and member_key != key:
                    yield _assemble(group, key, name, root)
                    group = {}
                key = member_key
                data = tar.extractfile(info).read()
                if len(data) != info.size:
                    raise BadInputError(f"{name}{SEPARATOR}{info.name}", f"truncated: {len(data)} of {info.size} bytes")
                group[info.name] = data
    except tarfile.TarError as err:
        raise BadInputError(name, f"not a readable tar shard ({err})") from err
    if group:
        yield _assemble(group, key, name, root)


def _assemble(group: dict[str, bytes], key: str, name: str, root: Path | None) -> tuple[Sample, list[bytes]]:
    where = f"{name}{SEPARATOR}{key}.json"
    if f"{key}.json" not in group:
        raise BadInputError(where, "missing: every sample needs its .json member (was this packed by pack_shards?)")
    try:
        row = json.loads(group[f"{key}.json"])
        sample = sample_from_json(row, root, where)
    except ValueError as err:
        raise BadInputError(where, f"bad sample record ({err})") from err
    absent = [m for m in sample.files if m not in group]
    if absent:
        raise BadInputError(where, f"names member {absent[0]}, which is not beside it in the shard")
    data = [group[m] for m in sample.files]
    return sample_from_json(sample.with_files({m: f"{name}{SEPARATOR}{m}" for m in sample.files}), root, where), data
