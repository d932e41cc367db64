"""File loaders of the eight built-in modalities: real files written into tmp_path, checked
against the tiny preset's tokenizer shapes and for what their values mean."""
from __future__ import annotations

import math
from pathlib import Path

import av
import nibabel
import numpy as np
import open3d
import pytest
import soundfile
import torch
from PIL import Image

from onellm import OneLLMConfig
from onellm.errors import BadInputError
from onellm.data.dataset import ManifestDataset
from onellm.data.manifest import Sample
from onellm.inputs import guess_modality, load_input
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.tokenizers.image import CLIP_MEAN, CLIP_STD

CONFIG = OneLLMConfig.from_preset("tiny")
SIZE = CONFIG.encoder.image_size


def tokenizer(modality: str, **overrides):
    options = {**CONFIG.modalities[modality], **overrides}
    return get_modality(modality).tokenizer.from_options(CONFIG.encoder, options)


def context(modality: str, **overrides) -> LoadContext:
    """What a loader gets: the tokenizer's options, the encoder config, the input shape."""
    return LoadContext.build(get_modality(modality).tokenizer, CONFIG.encoder,
                             {**CONFIG.modalities[modality], **overrides})


def load(modality: str, paths: list[Path], train: bool = False, meta: dict | None = None, **overrides):
    ctx = context(modality, **overrides)
    x = get_modality(modality).load(paths, ctx, train=train, meta=meta)
    assert tuple(x.shape) == ctx.input_shape
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    return x


def seeded(fn, seed: int):
    torch.manual_seed(seed)
    return fn()


def clip_value(rgb: tuple[int, int, int]) -> torch.Tensor:
    return (torch.tensor(rgb) / 255.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)


def gradient_image(width: int, height: int) -> Image.Image:
    """Left-to-right red ramp, top-to-bottom green ramp: any crop is visible in the values."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8))


# image -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16", "CMYK"])
def test_image_any_mode_gives_model_tensor(tmp_path, mode):
    img = Image.new("RGB", (80, 60), (255, 0, 0))
    if mode == "I;16":
        img = Image.fromarray((np.arange(80 * 60).reshape(60, 80) * 10).astype(np.uint16))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    load("image", [path])


def test_red_image_normalises_per_channel(tmp_path):
    path = tmp_path / "red.jpg"
    Image.new("RGB", (70, 90), (255, 0, 0)).save(path, quality=100)
    x = load("image", [path])
    want = clip_value((255, 0, 0))
    torch.testing.assert_close(x.mean(dim=(1, 2)), want, atol=0.05, rtol=0)
    assert x[0].min() > x[1].max()  # red channel first


def test_transparent_rgba_composes_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (60, 60), (0, 0, 0, 0)).save(path)
    torch.testing.assert_close(load("image", [path])[:, 0, 0], clip_value((255, 255, 255)))


def test_animated_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (64, 64), c) for c in ((0, 0, 255), (255, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    x = load("image", [path])
    assert x[2].mean() > x[0].mean()  # blue, not yellow


def test_image_eval_is_centre_crop_and_train_is_seeded(tmp_path):
    path = tmp_path / "ramp.png"
    gradient_image(3 * SIZE, SIZE).save(path)
    x = load("image", [path])
    # Centre crop of a horizontal ramp: the red values are symmetric around the middle.
    red = x[0, SIZE // 2]
    assert abs(float(red[0] + red[-1]) / 2 - float(clip_value((128, 0, 0))[0])) < 0.1
    # A near-square image: RandomResizedCrop falls back to a fixed centre crop on very wide ones.
    gradient_image(2 * SIZE, 2 * SIZE).save(path)
    a = seeded(lambda: load("image", [path], train=True), 1)
    b = seeded(lambda: load("image", [path], train=True), 1)
    c = seeded(lambda: load("image", [path], train=True), 2)
    assert torch.equal(a, b) and not torch.equal(a, c)


# video -----------------------------------------------------------------------------------


def write_video(path: Path, colours: list[tuple[int, int, int]], fps: int = 10, size=(64, 48)) -> None:
    """One second per colour."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for colour in colours:
            for _ in range(fps):
                frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), colour, np.uint8), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


def index_colour(k: int) -> tuple[int, int, int]:
    """Frame k as a flat colour that survives lossy coding: three base-8 digits of k."""
    return (k % 8 * 32 + 16, k // 8 % 8 * 32 + 16, k // 64 % 8 * 32 + 16)


def colour_index(img: Image.Image) -> int:
    r, g, b = (int(v) // 32 for v in np.asarray(img, dtype=np.float32).mean(axis=(0, 1)))
    return r + 8 * g + 64 * b


def write_indexed_video(path: Path, frames: int, fps: int, size=(32, 32)) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for k in range(frames):
            pixels = np.full((size[1], size[0], 3), index_colour(k), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize("fps", [10, 25, 30])
@pytest.mark.parametrize("seconds", [0.8, 2.2, 3.5, 6.0, 7.3])
def test_video_clip_times_follow_the_published_sampler(tmp_path, fps, seconds):
    """pytorchvideo 0.1.5's ConstantClipsPerVideoSampler: clip i of 5 starts at
    i * (duration - 1 s) / 5, and its first frame is taken (the last clip ends early)."""
    from onellm.tokenizers.video import decode_clip_frames

    frames = round(seconds * fps)
    path = tmp_path / f"v{fps}.mp4"
    write_indexed_video(path, frames, fps)
    duration = frames / fps
    starts = [i * max(duration - 1.0, 0.0) / 5 for i in range(5)]
    want = [min(math.ceil(start * fps - 1e-6), frames - 1) for start in starts]
    assert [colour_index(img) for img in decode_clip_frames(path, 5)] == want


def test_video_published_resize_is_torch_bilinear_without_antialiasing(tmp_path):
    """Halving the short side with bilinear interpolation (align_corners False, no
    antialiasing) averages each 2x2 block exactly, so the published views are 2x2 means of
    the decoded frame; PIL's bicubic resize of our presets is not."""
    from onellm.tokenizers.video import decode_clip_frames

    path = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2 * SIZE, 4 * SIZE, 3), dtype=np.uint8)  # wide: crops along x
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 4 * SIZE, 2 * SIZE, "yuv420p"
        for _ in range(10):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    decoded = torch.from_numpy(np.array(decode_clip_frames(path, 1)[0])).permute(2, 0, 1).float() / 255
    halved = torch.nn.functional.avg_pool2d(decoded, 2)  # [3, SIZE, 2 * SIZE]
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    want = torch.stack([(halved[:, :, o : o + SIZE] - mean) / std for o in (0, SIZE // 2, SIZE)])
    x = load("video", [path], frames=3, crops=3, resize="bilinear")
    torch.testing.assert_close(x, want, atol=1e-5, rtol=0)
    assert (load("video", [path], frames=3, crops=3, resize="bicubic") - x).abs().max() > 0.1


def test_video_three_crops_along_the_long_side(tmp_path):
    path = tmp_path / "wide.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 96, 32, "yuv420p"
        ramp = np.asarray(gradient_image(96, 32))
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(ramp, format="rgb24")))
        container.mux(stream.encode())
    x = load("video", [path], frames=3, crops=3)
    red = x[:, 0].mean(dim=(1, 2))
    assert red[0] < red[1] < red[2]  # left, centre, right


def test_video_shorter_than_clips_repeats_frames(tmp_path):
    path = tmp_path / "short.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    x = load("video", [path], frames=6)
    assert torch.allclose(x[0], x[-1])


def test_video_train_is_one_seeded_crop_for_all_frames(tmp_path):
    path = tmp_path / "ramp.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuv420p"  # near-square: crops can vary
        for _ in range(10):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(gradient_image(80, 64)), format="rgb24")))
        container.mux(stream.encode())
    a = seeded(lambda: load("video", [path], train=True), 3)
    b = seeded(lambda: load("video", [path], train=True), 3)
    c = seeded(lambda: load("video", [path], train=True), 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a[0] - a[-1]).abs().max() < 0.1  # identical frames, identical crop


# audio -----------------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] + [np.zeros_like(wave)] * (channels - 1), axis=1)


def mel_bin_of(freq: float, bins: int) -> float:
    mel = lambda f: 1127.0 * math.log(1 + f / 700.0)  # noqa: E731  (kaldi's mel scale)
    return (mel(freq) - mel(20.0)) / (mel(8000.0) - mel(20.0)) * (bins + 1) - 1


def test_audio_tone_peaks_at_its_mel_bin_from_first_channel(tmp_path):
    path = tmp_path / "tone.wav"
    # 44.1 kHz stereo: the tone is in channel 0 only, so silence would mean the wrong channel.
    soundfile.write(path, tone(1000.0, 44100, 1.0, channels=2), 44100)
    x = load("audio", [path])
    bins = x.shape[1]
    profile = x[0, :, :90].mean(dim=1)  # 1 s of audio = ~98 frames
    assert abs(int(profile.argmax()) - mel_bin_of(1000.0, bins)) <= 1.5
    assert (x[0, :, 120:] == x[0, 0, -1]).all()  # zero-padded (then normalised) at the end


def test_audio_flac_m4a_and_mp3_agree(tmp_path):
    flac = tmp_path / "tone.flac"
    soundfile.write(flac, tone(500.0, 16000, 0.5), 16000)
    x = load("audio", [flac])
    ogg = tmp_path / "tone.m4a"
    with av.open(str(ogg), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = tone(500.0, 16000, 0.5)[:, 0]
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    y = load("audio", [ogg])
    assert int(x[0, :, 10:40].mean(1).argmax()) == int(y[0, :, 10:40].mean(1).argmax())
    mp3 = tmp_path / "tone.mp3"  # 22.05 kHz stereo, resampled to 16 kHz on the way in
    soundfile.write(mp3, tone(500.0, 22050, 0.5, channels=2), 22050, format="MP3")
    z = load("audio", [mp3])
    assert int(x[0, :, 10:40].mean(1).argmax()) == int(z[0, :, 10:40].mean(1).argmax())


def test_audio_train_masks_are_seeded(tmp_path):
    path = tmp_path / "noise.wav"
    soundfile.write(path, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
    eval_x = load("audio", [path])
    a = seeded(lambda: load("audio", [path], train=True), 5)
    b = seeded(lambda: load("audio", [path], train=True), 5)
    c = seeded(lambda: load("audio", [path], train=True), 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, eval_x)


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
        x = seeded(lambda: load("depth", [depth, rgb], train=train), 9)
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
