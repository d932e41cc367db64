"""No crash on any bad file: real files of every built-in modality, damaged in many ways with
a fixed seed, go through `onellm caption`, ManifestDataset and the demo. Each must end as one
line naming the file (the CLI), a BadSample (the dataset) or an error on the page (the demo)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onellm import OneLLM, OneLLMConfig
from onellm.data.dataset import BadSample, ManifestDataset
from onellm.data.manifest import Sample
from onellm.errors import BadInputError

pytestmark = pytest.mark.slow  # 132 damaged files through caption, training and the demo

SEED = 0
RUNNER = Path(__file__).with_name("caption_many.py")
PEAK_RSS_LIMIT_MB = 3 * 1024
CONFIG = OneLLMConfig.from_preset("tiny")


@dataclass
class Case:
    name: str
    modality: str
    paths: list[Path]  # the modality's own file, then its companions
    meta: dict = field(default_factory=dict)
    expect: str = "good"  # or "bad", or "either" for damage a decoder may shrug off

    def caption_args(self) -> list[str]:
        companions = [a for p in self.paths[1:] for a in ("--companion", str(p))]
        meta = [f"--meta={k}={v}" for k, v in self.meta.items()]
        return [
            "--model",
            "tiny",
            "--max-new-tokens",
            "1",
            "--modality",
            self.modality,
            *companions,
            *meta,
            str(self.paths[0]),
        ]


# good files ------------------------------------------------------------------------------


def _rgb_image(rng: np.random.Generator) -> Image.Image:
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = rng.integers(0, 255, 3)
    pixels[16:, 20:] = rng.integers(0, 255, 3)
    return Image.fromarray(pixels)


def _video(path: Path, rng: np.random.Generator) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            frame = np.full((48, 64, 3), 20, np.uint8)
            frame[:, 3 * i : 3 * i + 12] = (200, 80, 30)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _ply(path: Path, rng: np.random.Generator) -> None:
    """Binary, so that damage lands in numbers as well as in the text header."""
    xyz = rng.standard_normal((2000, 3)).astype(np.float32)
    rgb = rng.integers(0, 255, (2000, 3), dtype=np.uint8)
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "element vertex 2000",
        *(f"property float {a}" for a in "xyz"),
        *(f"property uchar {c}" for c in ("red", "green", "blue")),
        "end_header",
    ]
    rows = np.zeros(2000, dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    rows["xyz"], rows["rgb"] = xyz, rgb
    path.write_bytes(("\n".join(header) + "\n").encode() + rows.tobytes())


def _nifti(path: Path, array: np.ndarray) -> None:
    import nibabel

    nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), str(path))


def good_files(d: Path) -> list[Case]:
    """One small real file per built-in format, with the companions and meta it needs."""
    import soundfile

    rng = np.random.default_rng(SEED)
    rgb = d / "room.png"
    _rgb_image(rng).save(rgb)
    _rgb_image(rng).save(d / "photo.png")
    _rgb_image(rng).save(d / "photo.jpg")
    _video(d / "clip.mp4", rng)
    wave = (0.3 * np.sin(np.linspace(0, 900, 8000)) + 0.01 * rng.standard_normal(8000)).astype(np.float32)
    soundfile.write(d / "tone.wav", wave, 16000)
    soundfile.write(d / "tone.flac", wave, 16000)
    _ply(d / "cloud.ply", rng)
    cloud = np.concatenate([rng.standard_normal((1500, 3)), rng.random((1500, 3))], axis=1)
    np.save(d / "cloud.npy", cloud.astype(np.float32))
    Image.fromarray(np.tile(np.linspace(500, 4000, 64, dtype=np.uint16), (48, 1))).save(d / "room.depth.png")
    np.save(d / "room.depth.npy", rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32))
    normals = rng.standard_normal((48, 64, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    Image.fromarray(np.round((normals + 1) / 2 * 255).astype(np.uint8)).save(d / "room.normal.png")
    np.save(d / "room.normal.npy", normals)
    t = np.arange(500) / 200
    rows = np.column_stack([t, np.sin(t[:, None] * np.arange(1, 7))])
    np.savetxt(d / "walk.csv", rows, delimiter=",", header="timestamp,ax,ay,az,gx,gy,gz", comments="")
    np.save(d / "walk.npy", rows[:, 1:].astype(np.float32))
    voxels = CONFIG.modalities["fmri"]["voxels"]
    _nifti(d / "scan.nii", rng.standard_normal((voxels // 64, 8, 8)).astype(np.float32))
    _nifti(d / "mask.nii", np.ones((voxels // 64, 8, 8), np.uint8))
    np.save(d / "scan.npy", rng.standard_normal(voxels).astype(np.float32))
    return [
        Case("photo.png", "image", [d / "photo.png"]),
        Case("photo.jpg", "image", [d / "photo.jpg"]),
        Case("clip.mp4", "video", [d / "clip.mp4"]),
        Case("tone.wav", "audio", [d / "tone.wav"]),
        Case("tone.flac", "audio", [d / "tone.flac"]),
        Case("cloud.ply", "point", [d / "cloud.ply"]),
        Case("cloud.npy", "point", [d / "cloud.npy"]),
        Case("room.depth.png", "depth", [d / "room.depth.png", rgb]),
        Case("room.depth.npy", "depth", [d / "room.depth.npy", rgb]),
        Case("room.normal.png", "normal", [d / "room.normal.png", rgb]),
        Case("room.normal.npy", "normal", [d / "room.normal.npy", rgb]),
        Case("walk.csv", "imu", [d / "walk.csv"]),
        Case("walk.npy", "imu", [d / "walk.npy"], {"sample_rate": 200}),
        Case("scan.nii", "fmri", [d / "scan.nii", d / "mask.nii"]),
        Case("scan.npy", "fmri", [d / "scan.npy"]),
    ]


# damage ----------------------------------------------------------------------------------

Mutation = Callable[[bytes, np.random.Generator], bytes]


def _flip(data: bytes, rng: np.random.Generator, start: int, end: int, count: int) -> bytes:
    out = bytearray(data)
    for i in rng.integers(start, max(end, start + 1), count):
        out[min(i, len(out) - 1)] ^= int(rng.integers(1, 256))
    return bytes(out)


GENERIC: dict[str, tuple[Mutation, str]] = {
    "empty": (lambda b, rng: b"", "bad"),
    "header-only": (lambda b, rng: b[:16], "bad"),
    "garbage": (lambda b, rng: rng.integers(0, 256, len(b), dtype=np.uint8).tobytes(), "bad"),
    "half": (lambda b, rng: b[: len(b) // 2], "either"),
    "flip-header": (lambda b, rng: _flip(b, rng, 0, min(64, len(b)), 3), "either"),
    "flip-body": (lambda b, rng: _flip(b, rng, len(b) // 4, len(b), 8), "either"),
}


def _png_size(width: int, height: int) -> Mutation:
    """The IHDR chunk declares another size (its CRC still right); the pixels stay tiny."""

    def mutate(data: bytes, rng: np.random.Generator) -> bytes:
        ihdr = data[12:16] + struct.pack(">II", width, height) + data[24:29]
        return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]

    return mutate


def _jpeg_size(data: bytes, rng: np.random.Generator) -> bytes:
    at = data.index(b"\xff\xc0") + 5  # baseline SOF: length, precision, then height and width
    return data[:at] + struct.pack(">HH", 60000, 60000) + data[at + 4 :]


def _npy_giant_shape(data: bytes, rng: np.random.Generator) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (200_000, 300_000)})
    return out.getvalue() + bytes(1024)


def _npy_of(array: np.ndarray) -> Mutation:
    def mutate(data: bytes, rng: np.random.Generator) -> bytes:
        out = io.BytesIO()
        np.save(out, array, allow_pickle=True)
        return out.getvalue()

    return mutate


def _nifti_dims(*dims: int) -> Mutation:
    """dim[0] (the rank) and the sizes in the header, the voxel data unchanged."""

    def mutate(data: bytes, rng: np.random.Generator) -> bytes:
        return data[:40] + struct.pack("<8h", len(dims), *dims, *[1] * (7 - len(dims))) + data[56:]

    return mutate


def _wav_giant(data: bytes, rng: np.random.Generator) -> bytes:
    at = data.index(b"data") + 4
    return data[:4] + struct.pack("<I", 0xFFFFFFF0) + data[8:at] + struct.pack("<I", 0x7FFFFFF0) + data[at + 4 :]


def _flac_giant(data: bytes, rng: np.random.Generator) -> bytes:
    """STREAMINFO's 36-bit total sample count (bytes 21-25 of the file) at its maximum."""
    return data[:21] + bytes([data[21] | 0x0F]) + b"\xff" * 4 + data[26:]


SPECIFIC: dict[str, dict[str, tuple[Mutation, str]]] = {
    ".png": {
        "13000x13000": (_png_size(13000, 13000), "bad"),
        "60000x60000": (_png_size(60000, 60000), "bad"),
        "40000x1": (_png_size(40000, 1), "bad"),
    },
    ".jpg": {"60000x60000": (_jpeg_size, "bad")},
    ".npy": {
        "giant-shape": (_npy_giant_shape, "bad"),
        "corrupt-header": (lambda b, rng: b[:20] + b"(" * 10 + b[30:], "bad"),
        "wrong-shape": (_npy_of(np.zeros((2, 3, 4), np.float32)), "bad"),
        "objects": (_npy_of(np.array([{"a": 1}, None], dtype=object)), "bad"),
        "complex": (_npy_of(np.zeros((64, 6), np.complex64)), "bad"),
    },
    ".nii": {"giant-dims": (_nifti_dims(30000, 30000, 30000), "bad"), "2-d": (_nifti_dims(16, 64), "bad")},
    ".ply": {"giant-count": (lambda b, rng: b.replace(b"element vertex 2000", b"element vertex 2000000000"), "bad")},
    ".csv": {
        "five-columns": (lambda b, rng: b"timestamp,a,b,c,d\n" + b"0,1,2,3,4\n0.01,1,2,3,4\n", "bad"),
        "text": (lambda b, rng: b"timestamp,ax\nhello,world\n", "bad"),
    },
    ".wav": {"giant-size": (_wav_giant, "either")},
    ".flac": {"giant-count": (_flac_giant, "either")},
}


def damaged_files(d: Path, good: list[Case]) -> list[Case]:
    """Every good file damaged by every generic mutation and by those of its format; the
    companions stay intact, so that the damage alone decides."""
    rng = np.random.default_rng(SEED)
    cases = []
    for case in good:
        main, data = case.paths[0], case.paths[0].read_bytes()
        stem, suffixes = main.name.split(".", 1)
        for name, (mutate, expect) in {**GENERIC, **SPECIFIC.get(main.suffix, {})}.items():
            path = d / f"{stem}-{name}.{suffixes}"
            path.write_bytes(mutate(data, rng))
            cases.append(Case(path.name, case.modality, [path, *case.paths[1:]], case.meta, expect))
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    d = tmp_path_factory.mktemp("files")
    good = good_files(d)
    return good + damaged_files(d, good)


# tests -----------------------------------------------------------------------------------


def _run_caption_many(cases: list[Case], d: Path) -> tuple[subprocess.CompletedProcess, Path]:
    (d / "cases.json").write_text(json.dumps([{"name": c.name, "args": c.caption_args()} for c in cases]))
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(d / "cases.json"), str(d / "results.json"), str(d / "progress.txt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, d / "results.json"


def test_caption_ends_every_bad_file_with_one_line(cases, tmp_path):
    # One real command line end to end, run beside the many-files process (two cores).
    huge_depth = next(c for c in cases if c.name == "room-13000x13000.depth.png")  # as the user met it
    alone = subprocess.Popen(
        [sys.executable, "-m", "onellm.cli", "caption", *huge_depth.caption_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done, results_file = _run_caption_many(cases, tmp_path)
    last = (tmp_path / "progress.txt").read_text().splitlines()[-1:]
    assert done.returncode == 0, f"the process died (status {done.returncode}) on {last}: {done.stderr[-2000:]}"
    report = json.loads(results_file.read_text())
    results, peak = report["results"], report["peak_rss_mb"]
    print(f"\npeak RSS of the caption process over {len(cases)} files: {peak:.0f} MB")
    assert peak < PEAK_RSS_LIMIT_MB

    for case in cases:
        got = results[case.name]
        failed = got["rc"] != 0
        assert case.expect != "good" or not failed, (case.name, got)
        assert case.expect != "bad" or failed, (case.name, got)
        if failed:
            lines = got["stderr"].splitlines()
            assert got["rc"] == 2 and len(lines) == 1 and not got["stdout"], (case.name, got)
            assert lines[0].startswith("onellm caption: error: ") and case.paths[0].name in lines[0], lines
        else:
            assert len(got["stdout"].splitlines()) == 1 and got["stdout"].startswith(str(case.paths[0]))
            assert not got["stderr"], (case.name, got)  # no decoder chatter, no numba TBB warning
        assert "Traceback" not in got["stderr"]

    out, err = alone.communicate(timeout=120)
    assert alone.returncode == 2 and not out
    assert err.startswith(
        f"onellm caption: error: {huge_depth.paths[0]}: depth: 13000x13000 pixels is too large, "
        "over the 50-megapixel limit"
    )
    assert err.count("\n") == 1 and err.endswith("\n")


def test_dataset_turns_every_bad_file_into_a_bad_sample(cases):
    tokenizers = dict(OneLLM(CONFIG).tokenizers)
    samples = [Sample(c.name, c.modality, [str(p) for p in c.paths], meta=c.meta) for c in cases]
    dataset = ManifestDataset(samples, tokenizers)
    tally: dict[str, Counter] = {}
    for index, case in enumerate(cases):
        item = dataset[index]
        if isinstance(item, BadSample):
            assert case.expect != "good", item
            assert item.id == case.name and case.paths[0].name in item.reason and item.problem, item
        else:
            assert case.expect != "bad", case.name
            (x,) = item[1]  # one input per sample
            assert x.shape == tokenizers[case.modality].input_shape and torch.isfinite(x).all()
        if case.expect != "good":
            tally.setdefault(case.modality, Counter())["bad" if isinstance(item, BadSample) else "valid"] += 1
    print("\ndamaged files per modality:", {m: dict(c) for m, c in tally.items()})


def test_demo_error_names_the_upload_and_the_next_request_is_answered(cases):
    pytest.importorskip("gradio")
    client_lib = pytest.importorskip("gradio_client")
    from onellm.demo.app import build_app

    huge = next(c for c in cases if c.name == "room-13000x13000.depth.png")
    good = next(c for c in cases if c.name == "room.depth.png")
    demo = build_app(OneLLM(CONFIG))
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = client_lib.Client(url, verbose=False)

        def caption(case: Case):
            uploads = [client_lib.handle_file(str(p)) for p in case.paths]
            return client.predict(*uploads, "depth", [], 4, 0.0, 1.0, api_name="/caption")

        with pytest.raises(client_lib.exceptions.AppError) as caught:
            caption(huge)
        message = str(caught.value)
        assert message == f"{huge.paths[0].name}: depth: 13000x13000 pixels is too large, over the 50-megapixel limit"
        history, _ = caption(good)
        assert [m["role"] for m in history] == ["user", "assistant"]
    finally:
        demo.close()


def test_read_npy_refuses_by_the_header(tmp_path, monkeypatch):
    from onellm import readers

    np.save(tmp_path / "big.npy", np.zeros((100, 6), np.float32))
    monkeypatch.setattr(readers, "MAX_ARRAY_VALUES", 599)
    with pytest.raises(BadInputError, match=r"big\.npy: declares an array of shape \[100, 6\], over the 599-value"):
        readers.read_npy(tmp_path / "big.npy")
    np.savez(tmp_path / "archive.npy", a=np.zeros(3))
    with pytest.raises(BadInputError, match=r"archive\.npy.npz: an \.npz archive"):
        readers.read_npy(tmp_path / "archive.npy.npz")


def test_video_frames_are_bounded_like_images(tmp_path):
    """A 16x1700 strip: its short side scaled to the model's size would make the long side huge."""
    import av

    from onellm.tokenizers.video import decode_clip_frames

    path = tmp_path / "strip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 1700, "yuv420p"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((1700, 16, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    with pytest.raises(BadInputError, match=r"strip\.mp4: 16x1700 pixels is too elongated, beyond 100:1"):
        decode_clip_frames(path, 3)
