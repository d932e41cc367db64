"""Streamed datasets: a manifest's samples in Lightning's litdata chunked format, for data too
large to hold one Python object per sample (LAION-scale alignment).

`write_streamed(manifest, out)` writes one litdata dataset per split, `out/<split>/`
(`index.json` and `chunk-*.bin`), readable from a local folder or an object store URL
(s3://, gs://, ...) that litdata streams and caches. Each item is two fields:

    sample: JSON {"row": the manifest row, its files renamed to member names,
                  "sizes": each member's size in bytes}
    data:   the members' bytes end to end

`StreamedSamples` reads any item by index without reading the others (litdata keeps one
chunk's offsets; memory does not grow with the dataset), and hands the loaders its files as
`MemoryFile`s: nothing is written to disk on the way."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import BadInputError
from ..modality import LoadContext
from ..sources import MemoryFile
from .dataset import BadSample, ManifestDataset
from .manifest import Sample, iter_manifest, sample_from_json
from .shards import member_names, read_source, unique_key

# The only item layout read: litdata can also store pickles, which would run code from a
# downloaded index.
ITEM_FORMAT = ["str", "bytes"]
ITEM_LOADER = "PyTreeLoader"


def is_url(location: str) -> bool:
    """An object-store address (s3://, gs://, ...), which litdata fetches and caches."""
    return "://" in location


def split_location(location: str, split: str) -> str:
    return f"{location.rstrip('/')}/{split}"


def write_streamed(manifest: Path | str, out_dir: Path | str, chunk_bytes: str = "64MB") -> dict[str, Any]:
    """Write `manifest`'s samples as `out_dir/<split>/`, a litdata dataset per split, each
    replaced atomically once complete. A sample whose file cannot be read is left out and
    counted. Returns {"written": {split: n}, "skipped": n, "problems": [first reasons],
    "per_chunk": {split: mean samples per chunk}}."""
    from litdata.streaming.writer import BinaryWriter

    manifest, out_dir = Path(manifest), Path(out_dir)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".streamed-"))
    writers: dict[str, BinaryWriter] = {}
    written: dict[str, int] = {}
    per_chunk: dict[str, int] = {}
    skipped, problems, keys = 0, [], set()
    try:
        for sample in tqdm(iter_manifest(manifest), desc=f"streaming {manifest.name}", unit="sample", leave=False):
            try:
                data = [read_source(path) for path in sample.paths()]
            except BadInputError as err:
                skipped += 1
                if len(problems) < 5:
                    problems.append(f"{sample.id}: {err}")
                continue
            if sample.split not in writers:
                writers[sample.split] = BinaryWriter(str(staging / sample.split), chunk_bytes=chunk_bytes)
            members = member_names(unique_key(sample.id, keys), sample.files)
            header = {"row": sample.with_files(dict(zip(sample.files, members))), "sizes": [len(d) for d in data]}
            n = written.get(sample.split, 0)
            writers[sample.split].add_item(
                n, {"sample": json.dumps(header, ensure_ascii=False), "data": b"".join(data)}
            )
            written[sample.split] = n + 1
        for writer in writers.values():
            writer.done()
            writer.merge()
        for split in writers:
            chunks = json.loads((staging / split / "index.json").read_text())["chunks"]
            per_chunk[split] = round(sum(c["chunk_size"] for c in chunks) / len(chunks))
            target = out_dir / split
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / split, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"written": written, "skipped": skipped, "problems": problems, "per_chunk": per_chunk}


def open_streamed(location: str) -> Any:
    """litdata's StreamingDataset over a streamed split (a folder or a URL), refused unless its
    index declares the item layout written here."""
    from litdata import StreamingDataset

    if not is_url(location) and not (Path(location) / "index.json").is_file():
        raise FileNotFoundError(
            f"{location}: no streamed dataset here (no index.json); write one with "
            "`onellm data shards <manifest> --out <folder>`"
        )
    # batch_decode="item": decode only the requested item; litdata's default decodes a window
    # of 256 around it, 30x slower for the shuffled access training makes.
    dataset = StreamingDataset(location, batch_decode="item")
    index = Path(dataset.input_dir.path or location) / "index.json"
    if index.is_file():
        config = json.loads(index.read_text())["config"]
        if config.get("data_format") != ITEM_FORMAT or config.get("item_loader") != ITEM_LOADER:
            raise ValueError(
                f"{location}: not an onellm streamed dataset (items are {config.get('data_format')}, "
                f"expected {ITEM_FORMAT}); write it with `onellm data shards`"
            )
    return dataset


class StreamedSamples(ManifestDataset):
    """The samples of one streamed split, as (sample, inputs) or BadSample like ManifestDataset.
    The litdata reader opens lazily in each process (DataLoader workers included)."""

    def __init__(
        self,
        location: str,
        contexts: dict[str, LoadContext],
        modality: str,
        train: bool = False,
        limit: int | None = None,
    ) -> None:
        self.location, self.modality, self.train = location, modality, train
        self.contexts = dict(contexts)
        self._reader: Any = None
        self.size = len(self.reader) if limit is None else min(limit, len(self.reader))

    @property
    def reader(self) -> Any:
        if self._reader is None:
            self._reader = open_streamed(self.location)
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Sample, list] | BadSample:
        where = f"{self.location}[{index}]"
        try:
            sample, files = decode_item(self.reader[index], self.location, where)
        except ValueError as err:
            return BadSample(where, f"{where}: {err}", "bad streamed item")
        if sample.modality != self.modality:
            return BadSample(
                sample.id,
                f"{where}: sample {sample.id} is {sample.modality}, the dataset entry says {self.modality}",
                "wrong modality",
            )
        if not (sample.caption or sample.qa or len(sample.conversations) >= 2):
            return BadSample(
                sample.id, f"{where}: sample {sample.id} has no caption, QA pair or conversation", "nothing to train on"
            )
        return self.loaded(sample, lambda paths: [files[p.name] for p in paths])


def decode_item(item: dict[str, Any], location: str, where: str) -> tuple[Sample, dict[str, MemoryFile]]:
    """The sample and its files (by member name) of one streamed item; ValueError if malformed."""
    try:
        header = json.loads(item["sample"])
        row, sizes = header["row"], header["sizes"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable sample record ({err})") from err
    sample = sample_from_json(row, None, where)
    data = item["data"]  # litdata hands out a memoryview into its chunk
    if len(sizes) != len(sample.files) or sum(sizes) != len(data):
        raise ValueError(f"sample {sample.id}: member sizes {sizes} do not add up to its {len(data)} bytes")
    files, start = {}, 0
    for name, size in zip(sample.files, sizes):
        files[name] = MemoryFile(name, bytes(data[start : start + size]), f"{location}#{name}")
        start += size
    return sample, files
