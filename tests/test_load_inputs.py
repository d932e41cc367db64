"""Bad files of every built-in modality raise one error naming the file, and inputs.py
(guessing a file's modality, companions, raw arrays) on real files."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest
import soundfile
import torch
from loading_helpers import CONFIG, context, load, tokenizer
from PIL import Image

from onellm.data.dataset import ManifestDataset
from onellm.data.manifest import Sample
from onellm.errors import BadInputError
from onellm.inputs import guess_modality, load_input
from onellm.modality import LoadContext
from onellm.registry import get_modality

# bad inputs ------------------------------------------------------------------------------


def _truncated_png(tmp_path: Path) -> list[Path]:
    path = tmp_path / "broken.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    return [path]


def _empty_wav(tmp_path: Path) -> list[Path]:
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros((0, 1), np.float32), 16000)
    return [path]


def _five_column_csv(tmp_path: Path) -> list[Path]:
    path = tmp_path / "five.csv"
    path.write_text("timestamp,a,b,c,d,e\n" + "\n".join(f"{i / 100},1,2,3,4,5" for i in range(50)))
    return [path]


def _rateless_csv(tmp_path: Path) -> list[Path]:
    path = tmp_path / "norate.csv"
    path.write_text("\n".join("1,2,3,4,5,6" for _ in range(50)))
    return [path]


def _short_fmri(tmp_path: Path) -> list[Path]:
    path = tmp_path / "short_betas.npy"
    np.save(path, np.zeros(CONFIG.modalities["fmri"]["voxels"] - 1, np.float32))
    return [path]


def _missing_rgb(tmp_path: Path) -> list[Path]:
    path = tmp_path / "lonely.depth.png"
    Image.new("L", (32, 32)).save(path)
    return [path]


def _garbage_video(tmp_path: Path) -> list[Path]:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"\x00not a video" * 100)
    return [path]


def _empty_ply(tmp_path: Path) -> list[Path]:
    path = tmp_path / "empty.ply"
    header = ["ply", "format ascii 1.0", "element vertex 0", *(f"property float {a}" for a in "xyz"), "end_header"]
    path.write_text("\n".join(header) + "\n")
    return [path]


@pytest.mark.parametrize(
    "modality, make, words",
    [
        ("image", _truncated_png, "image"),
        ("audio", _empty_wav, "empty"),
        ("imu", _five_column_csv, "6 IMU channels"),
        ("imu", _rateless_csv, "sample rate"),
        ("fmri", _short_fmri, "voxels"),
        ("depth", _missing_rgb, "RGB image"),
        ("video", _garbage_video, "video"),
        ("point", _empty_ply, "no points"),
    ],
)
def test_bad_inputs_raise_bad_input_error_naming_the_file(tmp_path, modality, make, words):
    paths = make(tmp_path)
    with pytest.raises(BadInputError) as info:
        get_modality(modality).load(paths, context(modality))
    assert paths[0].name in str(info.value) and words in str(info.value)


def test_fmri_mask_length_mismatch_names_both_numbers(tmp_path):
    voxels = CONFIG.modalities["fmri"]["voxels"]
    mask = np.zeros((8, 8, 8), np.uint8)
    mask.reshape(-1)[:100] = 1
    vol, roi = tmp_path / "vol.nii", tmp_path / "mask.nii"
    nibabel.save(nibabel.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), vol)
    nibabel.save(nibabel.Nifti1Image(mask, np.eye(4)), roi)
    with pytest.raises(BadInputError, match=rf"vol\.nii: 100 voxels, .* takes {voxels}"):
        load("fmri", [vol, roi])


# inputs.py -------------------------------------------------------------------------------


def test_guess_modality_prefers_longest_extension(tmp_path):
    toks = {m: tokenizer(m) for m in CONFIG.modalities}
    assert guess_modality(Path("a.depth.png"), toks) == "depth"
    assert guess_modality(Path("a.normal.npy"), toks) == "normal"
    assert guess_modality(Path("a.png"), toks) == "image"
    assert guess_modality(Path("a.nii.gz"), toks) == "fmri"
    raw = tmp_path / "raw.npy"
    np.save(raw, np.zeros(toks["imu"].input_shape, np.float32))
    assert guess_modality(raw, toks) == "imu"
    with pytest.raises(ValueError, match="could be any of"):
        guess_modality(Path("a.npy"), toks)


def test_load_input_uses_companions_and_raw_arrays(tmp_path):
    rgb = tmp_path / "s.png"
    Image.new("RGB", (40, 40), (0, 255, 0)).save(rgb)
    depth = tmp_path / "s.depth.npy"
    np.save(depth, np.ones((40, 40), np.float32))
    tok = tokenizer("depth")
    assert load_input([depth, rgb], "depth", tok).shape == tok.input_shape
    raw = tmp_path / "raw.npy"
    np.save(raw, np.ones(tok.input_shape, np.float32))
    assert torch.equal(load_input([raw], "depth", tok), torch.ones(tok.input_shape))
    with pytest.raises(BadInputError, match="missing.png: depth: no such file"):
        load_input([depth, tmp_path / "missing.png"], "depth", tok)


def test_load_input_takes_the_tokenizer_or_its_context(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (70, 50), (10, 200, 30)).save(path)
    tok = tokenizer("image")
    assert torch.equal(load_input([path], "image", tok), load_input([path], "image", LoadContext.of(tok)))
    assert LoadContext.of(tok) == context("image") and LoadContext.of(tok).input_shape == tok.input_shape


def test_dataset_workers_get_options_not_weights(tmp_path):
    """The published 7B fMRI projection alone is 15724 x 32768 floats; what a DataLoader worker
    is sent of it must be its options and input shape."""
    import pickle

    big = get_modality("fmri").tokenizer.from_options(CONFIG.encoder, {"voxels": 15724, "tokens": 8})
    samples = [Sample("f-0", "fmri", [str(tmp_path / "f.npy")], caption="x")]
    dataset = ManifestDataset(samples, {"fmri": big})
    assert dataset.contexts == {"fmri": LoadContext.of(big)}
    assert len(pickle.dumps(dataset)) < 10_000 < sum(p.numel() for p in big.parameters())
