"""File loaders of the image, video and audio modalities: real files written into tmp_path,
checked against the tiny preset's tokenizer shapes and for what their values mean."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch
from loading_helpers import SIZE, clip_value, gradient_image, load, seeded
from PIL import Image

from onellm.tokenizers.image import CLIP_MEAN, CLIP_STD

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
