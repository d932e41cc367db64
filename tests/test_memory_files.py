"""Every built-in loader reads a file held in memory (a streamed shard's member) exactly as it
reads the same bytes from disk, names the member where it came from when they are bad, and
writes no temporary file on the way."""

from __future__ import annotations

import io
import random
import struct
import tempfile
from pathlib import Path

import nibabel
import numpy as np
import open3d
import pytest
import soundfile
import torch
from media_files import bar_clip
from PIL import Image

from onellm import OneLLMConfig
from onellm.errors import BadInputError
from onellm.inputs import load_input
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.sources import MemoryFile, as_source, readable
from onellm.tokenizers.point import write_ply

CONFIG = OneLLMConfig.from_preset("tiny")
SHARD = "shards/train/chunk-0-3.bin"


def context(modality: str) -> LoadContext:
    return LoadContext.build(get_modality(modality).tokenizer, CONFIG.encoder, CONFIG.modalities[modality])


def in_memory(path: Path) -> MemoryFile:
    return MemoryFile(path.name, path.read_bytes(), where=f"{SHARD}#{path.name}")


def synthesized(d: Path, modality: str) -> tuple[list[Path], dict]:
    fields = get_modality(modality).synthesize(d, f"synth-{modality}", np.random.default_rng(7))
    return [d / name for name in fields["files"]], fields["meta"]


def write_files(d: Path) -> dict[str, tuple[str, list[Path], dict]]:
    """name: (modality, files, meta), every format a built-in loader reads by its own code path."""
    rng = np.random.default_rng(0)
    cases = {f"synth-{m}": (m, *synthesized(d, m)) for m in ("image", "video", "depth", "normal", "fmri")}
    photo = d / "synth-image.png"
    Image.open(photo).convert("RGB").save(d / "photo.jpg", quality=90)
    wave = (0.3 * np.sin(np.linspace(0, 900, 8000)) + 0.01 * rng.standard_normal(8000)).astype(np.float32)
    soundfile.write(d / "tone.wav", wave, 16000)
    soundfile.write(d / "tone.flac", wave, 22050)
    bar_clip(d / "talk.mp4")  # soundfile cannot read it: PyAV decodes the AAC soundtrack
    xyz, rgb = rng.standard_normal((1500, 3)), rng.random((1500, 3))
    write_ply(d / "cloud.ply", xyz, rgb)
    cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(xyz))
    open3d.io.write_point_cloud(str(d / "cloud.pcd"), cloud)
    np.save(d / "cloud.npy", np.concatenate([xyz, rgb], axis=1).astype(np.float32))
    np.save(d / "room.depth.npy", rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32))
    normals = rng.standard_normal((48, 64, 3)).astype(np.float32)
    np.save(d / "room.normal.npy", normals / np.linalg.norm(normals, axis=-1, keepdims=True))
    t = np.arange(500) / 100
    np.savetxt(
        d / "walk.csv",
        np.column_stack([t, np.sin(t[:, None] * np.arange(1, 7))]),
        delimiter=",",
        header="timestamp,ax,ay,az,gx,gy,gz",
        comments="",
    )
    np.save(d / "walk.npy", np.cos(t[:, None] * np.arange(1, 7)).astype(np.float32))
    voxels = CONFIG.modalities["fmri"]["voxels"]
    nibabel.save(nibabel.Nifti1Image(rng.standard_normal((16, 8, 8, 2)).astype(np.float32), np.eye(4)), d / "scan.nii")
    nibabel.save(nibabel.Nifti1Image(np.ones((16, 8, 8), np.uint8), np.eye(4)), d / "mask.nii")
    np.save(d / "scan.npy", rng.standard_normal(voxels).astype(np.float32))
    return {
        **cases,
        "photo.jpg": ("image", [d / "photo.jpg"], {}),
        "tone.wav": ("audio", [d / "tone.wav"], {}),
        "tone.flac": ("audio", [d / "tone.flac"], {}),
        "talk.mp4": ("audio", [d / "talk.mp4"], {}),
        "cloud.ply": ("point", [d / "cloud.ply"], {}),
        "cloud.pcd": ("point", [d / "cloud.pcd"], {}),
        "cloud.npy": ("point", [d / "cloud.npy"], {}),
        "room.depth.npy": ("depth", [d / "room.depth.npy", photo], {}),
        "room.normal.npy": ("normal", [d / "room.normal.npy", photo], {}),
        "walk.csv": ("imu", [d / "walk.csv"], {}),
        "walk.npy": ("imu", [d / "walk.npy"], {"sample_rate": 100}),
        "scan.nii": ("fmri", [d / "scan.nii", d / "mask.nii"], {}),
        "scan.npy": ("fmri", [d / "scan.npy"], {}),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[str, list[Path], dict]]:
    return write_files(tmp_path_factory.mktemp("media"))


def seeded_load(paths: list, modality: str, train: bool, meta: dict) -> torch.Tensor:
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    return load_input(paths, modality, context(modality), train=train, meta=meta)


# every built-in format, from disk and from memory -------------------------------------------


def test_every_built_in_modality_is_covered(files):
    assert {modality for modality, _, _ in files.values()} == set(CONFIG.modalities)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    "name",
    [
        "synth-image",
        "photo.jpg",
        "synth-video",
        "tone.wav",
        "tone.flac",
        "talk.mp4",
        "cloud.ply",
        "cloud.pcd",
        "cloud.npy",
        "synth-depth",
        "room.depth.npy",
        "synth-normal",
        "room.normal.npy",
        "walk.csv",
        "walk.npy",
        "synth-fmri",
        "scan.nii",
        "scan.npy",
    ],
)
def test_memory_file_loads_bit_for_bit_as_the_file(files, name, train):
    modality, paths, meta = files[name]
    from_disk = seeded_load(paths, modality, train, meta)
    from_memory = seeded_load([in_memory(p) for p in paths], modality, train, meta)
    assert torch.equal(from_disk, from_memory)


def test_a_member_and_a_file_on_disk_mix(files):
    """A depth map streamed from a shard with its RGB image on disk, as strings and Paths."""
    _, (depth, rgb), _ = files["synth-depth"]
    expected = seeded_load([depth, rgb], "depth", False, {})
    assert torch.equal(seeded_load([in_memory(depth), str(rgb)], "depth", False, {}), expected)
    assert torch.equal(
        seeded_load(in_memory(files["cloud.npy"][1][0]), "point", False, {}),
        seeded_load(files["cloud.npy"][1][0], "point", False, {}),
    )


def test_no_temporary_file_is_written(files, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a loader wrote a temporary file")

    for name in (
        "mkstemp",
        "mkdtemp",
        "NamedTemporaryFile",
        "TemporaryFile",
        "SpooledTemporaryFile",
        "TemporaryDirectory",
    ):
        monkeypatch.setattr(tempfile, name, refuse)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    for modality, paths, meta in files.values():
        for train in (False, True):
            seeded_load([in_memory(p) for p in paths], modality, train, meta)
    assert not list(scratch.iterdir())


# bad bytes: a BadInputError that names where they came from ----------------------------------


def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 3]


def _giant_npy(path: Path) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (200_000, 300_000)})
    return out.getvalue() + bytes(1024)


def _npz(path: Path) -> bytes:
    out = io.BytesIO()
    np.savez(out, a=np.zeros(3))
    return out.getvalue()


def _nifti_giant_dims(path: Path) -> bytes:
    data = path.read_bytes()
    return data[:40] + struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1) + data[56:]


# damage: (case, which of its files, mutation); the problem reads the same from memory as
# from disk, bar the name, except where a memory map of a file is refused by mmap and the
# view over bytes by numpy: the same refusal in other words.
BAD = {
    "truncated png": ("synth-image", 0, _truncated),
    "garbage png": ("synth-image", 0, lambda p: bytes(range(256)) * 4),
    "truncated mp4": ("synth-video", 0, _truncated),
    "truncated wav": ("tone.wav", 0, lambda p: p.read_bytes()[:30]),
    "garbage ply": ("cloud.ply", 0, lambda p: b"ply\nformat nonsense 1.0\nend_header\n" + bytes(64)),
    "ply declaring more points": ("cloud.ply", 0, lambda p: p.read_bytes().replace(b"vertex 1500", b"vertex 9000000")),
    "ply of no points": ("cloud.ply", 0, lambda p: p.read_bytes().replace(b"vertex 1500", b"vertex 0")),
    "garbage pcd": ("cloud.pcd", 0, lambda p: bytes(range(256)) * 4),
    "giant npy": ("cloud.npy", 0, _giant_npy),
    "npz as npy": ("scan.npy", 0, _npz),
    "csv of words": ("walk.csv", 0, lambda p: b"timestamp,ax\nhello,world\n"),
    "truncated nii.gz": ("synth-fmri", 0, _truncated),
    "not gzip nii.gz": ("synth-fmri", 0, lambda p: b"\x00" * 400),
    "giant nii": ("scan.nii", 0, _nifti_giant_dims),
    "truncated mask": ("scan.nii", 1, _truncated),
    "empty": ("synth-image", 0, lambda p: b""),
}


@pytest.mark.parametrize("damage", list(BAD))
def test_bad_bytes_name_where_they_came_from(files, tmp_path, damage):
    """The same error from memory as from disk, the member's `where` in place of the path."""
    case, index, mutate = BAD[damage]
    modality, paths, meta = files[case]
    bad = tmp_path / paths[index].name
    bad.write_bytes(mutate(paths[index]))
    on_disk = [*paths[:index], bad, *paths[index + 1 :]]
    with pytest.raises(BadInputError) as from_disk:
        seeded_load(on_disk, modality, False, meta)
    member = in_memory(bad)
    with pytest.raises(BadInputError) as from_memory:
        seeded_load([*paths[:index], member, *paths[index + 1 :]], modality, False, meta)
    assert str(from_memory.value).startswith(f"{SHARD}#{bad.name}: {modality}: ")
    assert from_memory.value.path == member.where and from_memory.value.modality == modality
    problems = [
        from_memory.value.problem.replace(member.where, "FILE"),
        from_disk.value.problem.replace(str(bad), "FILE"),
    ]
    if damage == "giant npy":
        assert problems == [
            "not a readable .npy array (TypeError: buffer is too small for requested array)",
            "not a readable .npy array (mmap length is greater than file size)",
        ]
    else:
        assert problems[0] == problems[1]


# MemoryFile itself ----------------------------------------------------------------------------


def test_memory_file_offers_what_loaders_use():
    f = MemoryFile("a/b/x.depth.png", b"12345", where="s.bin#x.depth.png")
    assert (f.name, f.suffix, f.suffixes, f.stem) == ("x.depth.png", ".png", [".depth", ".png"], "x.depth")
    assert f.read_bytes() == b"12345" and f.read_text() == "12345" and f.open("rb").read() == b"12345"
    assert f.open().read() == "12345" and f.stat().st_size == 5
    assert f.is_file() and f.exists() and not f.is_dir() and str(f) == "s.bin#x.depth.png"
    assert readable(f).read() == b"12345" and readable(Path("y.png")) == "y.png"
    assert as_source(f) is f and as_source("y.png") == Path("y.png")
    with pytest.raises(io.UnsupportedOperation):
        f.open("wb")
