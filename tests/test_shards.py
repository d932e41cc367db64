"""Tar shards: packing a manifest, reading members back through the path resolver (also
from DataLoader workers), streaming them without seeking, and clear errors on bad shards."""

from __future__ import annotations

import os
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from onellm.data.manifest import Sample, read_manifest, write_manifest
from onellm.data.shards import iter_shard_samples, materialized, pack_shards, split_shard_path
from onellm.errors import BadInputError
from onellm.sources import MemoryFile


@pytest.fixture
def packed(tmp_path: Path) -> tuple[list[Sample], Path]:
    """5 samples of real files (PNG images, a depth map + RGB pair, a point cloud .npy) in 2 shards."""
    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / "img" / f"{i}.png")
        samples.append(
            Sample(
                id=f"coco.{i}",
                modality="image",
                files=[f"img/{i}.png"],
                caption=f"picture {i}",
                meta={"references": [f"picture {i}", "a picture"]},
            )
        )
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(src / "d.depth.png")
    samples.append(Sample(id="d/0", modality="depth", files=["d.depth.png", "img/0.png"], caption="depth", split="val"))
    np.save(src / "cloud.npy", rng.random((64, 6), dtype=np.float32))
    samples.append(
        Sample(
            id="p0",
            modality="point",
            files=["cloud.npy"],
            conversations=[{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "A cloud."}],
        )
    )
    write_manifest(src / "all.jsonl", samples)
    return read_manifest(src / "all.jsonl"), pack_shards(src / "all.jsonl", tmp_path / "shards", samples_per_shard=3)


def test_pack_writes_shards_and_manifest_of_members(packed) -> None:
    originals, manifest = packed
    assert sorted(p.name for p in manifest.parent.glob("*.tar")) == ["shard-00000.tar", "shard-00001.tar"]
    rows = read_manifest(manifest)
    assert [r.id for r in rows] == [s.id for s in originals]
    assert rows[0].files == ["shard-00000.tar#coco_0.png"]
    assert rows[3].files == ["shard-00001.tar#d_0.depth.png", "shard-00001.tar#d_0.png"]
    for row, original in zip(rows, originals):  # every manifest field survives
        assert (row.caption, row.meta, row.conversations, row.split) == (
            original.caption,
            original.meta,
            original.conversations,
            original.split,
        )


def test_resolver_gives_identical_bytes_in_memory(packed) -> None:
    originals, manifest = packed
    for row, original in zip(read_manifest(manifest), originals):
        paths = materialized(row.paths())
        assert all(isinstance(p, MemoryFile) for p in paths)  # no temporary files
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in original.paths()]
        # loaders dispatch on suffixes: ".depth.png" must survive
        assert [p.name.split(".", 1)[1] for p in paths] == [Path(f).name.split(".", 1)[1] for f in original.files]
        assert [str(p) for p in paths] == [str(p) for p in row.paths()]  # errors name the shard member
    plain = originals[0].paths()
    assert materialized(plain) == plain


class _ShardBytes(Dataset):
    def __init__(self, rows: list[Sample]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, bytes, str]:
        paths = materialized(self.rows[i].paths())
        return os.getpid(), paths[0].read_bytes(), str(paths[0])


def test_resolver_works_in_dataloader_workers(packed) -> None:
    originals, manifest = packed
    loader = DataLoader(_ShardBytes(read_manifest(manifest)), batch_size=None, num_workers=2)
    got = list(loader)
    assert [data for _, data, _ in got] == [s.paths()[0].read_bytes() for s in originals]
    assert {pid for pid, _, _ in got} - {os.getpid()}  # read in the workers, not here


def test_iter_shard_samples_streams_from_files_and_pipes(packed) -> None:
    originals, manifest = packed
    shards = sorted(manifest.parent.glob("*.tar"))
    streamed = list(iter_shard_samples(shards))
    assert [s.id for s, _ in streamed] == [o.id for o in originals]
    assert [data for _, data in streamed] == [[p.read_bytes() for p in o.paths()] for o in originals]
    assert streamed[3][0].files == read_manifest(manifest)[3].files

    read_fd, write_fd = os.pipe()  # a pipe cannot seek: the stream must be read front to back

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(shards[1].read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        piped = list(iter_shard_samples([pipe]))
    writer.join()
    assert [(s.id, d) for s, d in piped] == [(s.id, d) for s, d in streamed[3:]]


def test_corrupted_and_truncated_shards_give_clear_errors(packed, tmp_path: Path) -> None:
    _, manifest = packed
    good = manifest.parent / "shard-00000.tar"
    garbage = tmp_path / "garbage.tar"
    data = bytearray(good.read_bytes())
    data[:512] = os.urandom(512)
    garbage.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match=r"garbage\.tar: not a readable tar shard"):
        materialized([Path(f"{garbage}#coco_0.png")])
    with pytest.raises(BadInputError, match=r"garbage\.tar: not a readable tar shard"):
        list(iter_shard_samples([garbage]))

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[:1600])  # ends inside the second sample
    with pytest.raises(BadInputError, match=r"truncated\.tar: truncated shard"):
        materialized([Path(f"{truncated}#coco_0.png")])
    with pytest.raises(BadInputError, match=r"truncated\.tar"):
        list(iter_shard_samples([truncated]))

    with pytest.raises(BadInputError, match=r"shard-00000\.tar#nope\.png: no such member"):
        materialized([Path(f"{good}#nope.png")])
    no_json = tmp_path / "no-json.tar"
    with tarfile.open(no_json, "w") as tar:
        tar.add(manifest.parent.parent / "src" / "img" / "0.png", arcname="k0.png")
    with pytest.raises(BadInputError, match=r"no-json\.tar#k0\.json: missing"):
        list(iter_shard_samples([no_json]))
    assert split_shard_path("a/b.png") is None and split_shard_path("x/s.tar#k.png") == (Path("x/s.tar"), "k.png")


def test_pack_refuses_to_overwrite_its_source(packed) -> None:
    _, manifest = packed
    with pytest.raises(ValueError, match="overwrite"):
        pack_shards(manifest, manifest.parent, samples_per_shard=2)


def test_data_shards_command_packs_each_manifest_into_its_folder(packed, tmp_path: Path, capsys) -> None:
    from onellm.cli import main

    originals, _ = packed
    src = tmp_path / "src"
    write_manifest(src / "image.jsonl", [s for s in originals if s.modality == "image"])
    write_manifest(src / "point.jsonl", [s for s in originals if s.modality == "point"])
    args = [
        "data",
        "shards",
        str(src / "image.jsonl"),
        str(src / "point.jsonl"),
        "--out",
        str(tmp_path / "cli"),
        "--format",
        "tar",
        "--samples-per-shard",
        "2",
    ]
    assert main(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert sorted(p.name for p in (tmp_path / "cli" / "image").glob("*.tar")) == ["shard-00000.tar", "shard-00001.tar"]
    for name in ("image", "point"):
        rows = read_manifest(tmp_path / "cli" / name / f"{name}.jsonl")
        originals_here = read_manifest(src / f"{name}.jsonl")
        assert [r.id for r in rows] == [o.id for o in originals_here]
        for row, original in zip(rows, originals_here):
            paths = materialized(row.paths())
            assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in original.paths()]
