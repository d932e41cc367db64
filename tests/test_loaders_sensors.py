"""File loaders of the point, depth, normal, IMU and fMRI modalities: real files written
into tmp_path, checked against the tiny preset's tokenizer shapes and for what their
values mean."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import open3d
import pytest
import torch
from loading_helpers import CONFIG, SIZE, clip_value, gradient_image, load, seeded, tokenizer
from PIL import Image

from onellm.inputs import load_input
from onellm.tokenizers.image import CLIP_MEAN, CLIP_STD

# point -----------------------------------------------------------------------------------


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> None:
    pcd = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(xyz.astype(np.float64)))
    if rgb is not None:
        pcd.colors = open3d.utility.Vector3dVector(rgb.astype(np.float64))
    open3d.io.write_point_cloud(str(path), pcd)


@pytest.mark.parametrize("colours", [True, False])
def test_point_ply_is_normalised_and_sized(tmp_path, colours):
    rng = np.random.default_rng(0)
    xyz = rng.normal(5.0, 3.0, (3000, 3))
    rgb = rng.uniform(0, 1, (3000, 3)) if colours else None
    path = tmp_path / "cloud.ply"
    write_ply(path, xyz, rgb)
    x = load("point", [path])
    assert x[:, :3].norm(dim=1).max() <= 1.0 + 1e-5
    assert x[:, :3].mean(dim=0).abs().max() < 1e-5
    if colours:
        assert 0 <= x[:, 3:].min() and x[:, 3:].max() <= 1 and x[:, 3:].std() > 0.1
    else:
        assert (x[:, 3:] == 0).all()


def test_point_npy_of_the_input_shape_is_still_normalised(tmp_path):
    """A PointLLM-style <uid>_8192.npy has the input's shape but is not centred or scaled."""
    tok = tokenizer("point")
    cloud = np.random.default_rng(1).normal(5.0, 3.0, tuple(tok.input_shape)).astype(np.float32)
    np.save(tmp_path / "uid_8192.npy", cloud)
    x = load_input([tmp_path / "uid_8192.npy"], "point", tok)
    assert x[:, :3].norm(dim=1).max() <= 1.0 + 1e-5 and x[:, :3].mean(dim=0).abs().max() < 1e-4


def test_point_eval_fps_spreads_and_small_clouds_repeat(tmp_path):
    # Two clusters, one with almost all points: FPS must still reach the small one.
    rng = np.random.default_rng(1)
    big = rng.normal(0, 0.01, (4000, 3))
    small = rng.normal(10, 0.01, (5, 3))
    path = tmp_path / "clusters.npy"
    np.save(path, np.concatenate([big, small]).astype(np.float32))
    x = load("point", [path])
    far = x[:, 0] > 0.5
    assert far.sum() >= 5
    small_path = tmp_path / "few.npy"
    np.save(small_path, rng.uniform(size=(100, 6)).astype(np.float32))
    y = load("point", [small_path])
    assert torch.equal(y, load("point", [small_path]))  # deterministic for eval
    assert len(torch.unique(y, dim=0)) == 100


def test_point_train_subsample_is_seeded(tmp_path):
    path = tmp_path / "cloud.npy"
    np.save(path, np.random.default_rng(2).uniform(size=(2000, 6)).astype(np.float32))
    a = seeded(lambda: load("point", [path], train=True), 7)
    b = seeded(lambda: load("point", [path], train=True), 7)
    c = seeded(lambda: load("point", [path], train=True), 8)
    assert torch.equal(a, b) and not torch.equal(a, c)


# depth and normal ------------------------------------------------------------------------


def test_depth_16bit_png_pairs_with_rgb_under_one_crop(tmp_path):
    rgb = tmp_path / "scene.png"
    gradient_image(120, 80).save(rgb)
    depth_mm = (np.linspace(500, 5000, 60)[None, :].repeat(40, 0)).astype(np.uint16)  # half size
    depth = tmp_path / "scene.depth.png"
    Image.fromarray(depth_mm).save(depth)
    assert Image.open(depth).mode.startswith("I")
    for train in (False, True):
        x = seeded(lambda train=train: load("depth", [depth, rgb], train=train), 9)
        # Both increase left to right; under one crop their column profiles agree.
        pixels = x * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
        rgb_cols, map_cols = pixels[0, 0].mean(0), pixels[1, 0].mean(0)
        assert torch.corrcoef(torch.stack([rgb_cols, map_cols]))[0, 1] > 0.99
        torch.testing.assert_close(map_cols, rgb_cols, atol=0.03, rtol=0)
        assert torch.allclose(pixels[1, 0], pixels[1, 1], atol=1e-5)  # grey rendering


def test_depth_npy_metres_renders_near_dark(tmp_path):
    rgb = tmp_path / "scene.jpg"
    Image.new("RGB", (SIZE, SIZE), (10, 20, 30)).save(rgb)
    metres = np.full((SIZE, SIZE), 2.0, np.float32)
    metres[:, SIZE // 2 :] = 6.0
    path = tmp_path / "scene.depth.npy"
    np.save(path, metres)
    x = load("depth", [path, rgb])
    torch.testing.assert_close(x[1, :, 5, 2], clip_value((0, 0, 0)))
    torch.testing.assert_close(x[1, :, 5, -2], clip_value((255, 255, 255)))


def test_depth_train_crop_is_seeded_and_shared(tmp_path):
    # The same noise texture as RGB and as depth: only an identical crop keeps them correlated.
    texture = np.random.default_rng(5).integers(1, 256, (90, 100)).astype(np.uint16)
    rgb, path = tmp_path / "noise.png", tmp_path / "noise.depth.png"
    Image.fromarray(texture.astype(np.uint8)).convert("RGB").save(rgb)
    Image.fromarray(texture * 10).save(path)
    runs = [seeded(lambda: load("depth", [path, rgb], train=True), seed) for seed in (10, 10, 11, 12)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    for x in runs:
        assert torch.corrcoef(torch.stack([x[0, 0].flatten(), x[1, 0].flatten()]))[0, 1] > 0.99


def test_normal_png_and_npy_agree(tmp_path):
    rgb = tmp_path / "scene.png"
    Image.new("RGB", (64, 64), (200, 100, 50)).save(rgb)
    normals = np.zeros((64, 64, 3), np.float32)
    normals[..., 2] = 1.0  # all facing the camera
    npy = tmp_path / "scene.normal.npy"
    np.save(npy, normals)
    png = tmp_path / "scene.normal.png"
    Image.fromarray(np.round((normals + 1) / 2 * 255).astype(np.uint8)).save(png)
    a = load("normal", [npy, rgb])
    b = load("normal", [png, rgb])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[1, :, 0, 0], clip_value((128, 128, 255)))
    torch.testing.assert_close(a[0, :, 0, 0], clip_value((200, 100, 50)))


# imu -------------------------------------------------------------------------------------


def test_imu_csv_timestamps_resampled_to_200hz(tmp_path):
    n = 150  # 1.5 s at 100 Hz -> 300 samples at 200 Hz
    t = np.arange(n) / 100.0 + 1234.5
    values = np.tile(np.array([1.0, -2.0, 9.81, 0.1, 0.2, 0.3]), (n, 1))
    path = tmp_path / "imu.csv"
    rows = "\n".join(",".join(f"{v:.6f}" for v in [ti, *vals]) for ti, vals in zip(t, values))
    path.write_text("timestamp,ax,ay,az,gx,gy,gz\n" + rows + "\n")
    x = load("imu", [path], normalize=False)
    assert (x[:, 300:] == 0).all() and (x[:, :300] != 0).all()
    # Constant in, constant out (to torchaudio's sinc ripple of ~0.1%), edges included.
    want = torch.tensor(values[0], dtype=torch.float32)[:, None].expand(6, 300)
    torch.testing.assert_close(x[:, :300], want, atol=1e-4, rtol=2e-3)


def test_imu_npy_with_meta_rate_and_window(tmp_path):
    rate = 50
    t = np.arange(10 * rate) / rate
    signal = np.stack([np.sin(2 * np.pi * 0.5 * t + k) for k in range(6)]).astype(np.float32)  # [6, N]
    path = tmp_path / "imu.npy"
    np.save(path, signal)
    x = load("imu", [path], meta={"sample_rate": rate, "start": 3.0, "end": 5.0}, normalize=False)
    # 2 s window at 200 Hz fills the tiny preset's 400 samples; it starts at t = 3 s.
    assert (x[:, -5:] != 0).any()
    for index in (0, 40, 200):  # 3.0 s, 3.2 s, 4.0 s
        want = np.sin(2 * np.pi * 0.5 * (3.0 + index / 200) + np.arange(6))
        torch.testing.assert_close(x[:, index], torch.tensor(want, dtype=torch.float32), atol=0.02, rtol=0)
    z = load("imu", [path], meta={"sample_rate": rate})
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=1, correction=0), torch.ones(6), atol=1e-3, rtol=0)


def test_imu_resample_padding_zeros_as_published_or_edge(tmp_path):
    """100 Hz -> 200 Hz. "zeros" (the published path, torchaudio's own padding) rings over
    the first and last few output samples of a constant signal; "edge" does not; between
    those edges both agree."""
    path = tmp_path / "imu100.npy"
    t = np.arange(200) / 100
    signal = np.stack([3.0 + np.sin(2 * np.pi * 0.7 * t + k) for k in range(6)]).astype(np.float32)
    np.save(path, signal)
    zeros = load("imu", [path], meta={"sample_rate": 100}, normalize=False, resample_padding="zeros")
    edge = load("imu", [path], meta={"sample_rate": 100}, normalize=False, resample_padding="edge")
    # Output samples between input samples see the padded zeros: sample 1 is off by over 0.2.
    assert (zeros[:, 1] - edge[:, 1]).abs().min() > 0.2
    torch.testing.assert_close(zeros[:, 16:384], edge[:, 16:384], atol=2e-3, rtol=0)
    for index in (0, 199, 399):
        want = 3.0 + np.sin(2 * np.pi * 0.7 * index / 200 + np.arange(6))
        torch.testing.assert_close(edge[:, index], torch.tensor(want, dtype=torch.float32), atol=0.03, rtol=0)
    with pytest.raises(ValueError, match="resample_padding"):
        tokenizer("imu", resample_padding="reflect")


# fmri ------------------------------------------------------------------------------------


def test_fmri_nifti_volume_with_mask(tmp_path):
    voxels = CONFIG.modalities["fmri"]["voxels"]
    shape = (16, 16, 8)
    rng = np.random.default_rng(3)
    mask = np.zeros(shape, np.uint8)
    mask.reshape(-1)[rng.choice(mask.size, voxels, replace=False)] = 1
    reps = rng.normal(size=shape + (3,)).astype(np.float32)
    vol, roi = tmp_path / "beta.nii.gz", tmp_path / "roi.nii"
    nibabel.save(nibabel.Nifti1Image(reps, np.eye(4)), vol)
    nibabel.save(nibabel.Nifti1Image(mask, np.eye(4)), roi)
    x = load("fmri", [vol, roi])
    torch.testing.assert_close(x, torch.from_numpy(reps.mean(axis=3)[mask != 0]))


def test_fmri_npy_repetitions_are_averaged(tmp_path):
    voxels = CONFIG.modalities["fmri"]["voxels"]
    reps = np.random.default_rng(4).normal(size=(3, voxels)).astype(np.float32)
    path = tmp_path / "betas.npy"
    np.save(path, reps)
    torch.testing.assert_close(load("fmri", [path]), torch.from_numpy(reps.mean(axis=0)))
