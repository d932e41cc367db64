"""The synthetic world: real files of each format, manifests, determinism, captions that
say what the files hold, and files the registered loaders turn into the tiny preset's inputs."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import av
import nibabel as nib
import numpy as np
import open3d as o3d
import pytest
import soundfile as sf
from PIL import Image

from onellm.config import OneLLMConfig
from onellm.data.cli import add_data_parser
from onellm.data.manifest import SPLITS, read_manifest
from onellm.data.synth.common import BACKGROUNDS, COLOURS
from onellm.data.synth.world import assign_split, sample_rng, scenes_for, synthesizable_modalities, synthesize_world
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.tokenizers import audio, depth, fmri, image, imu, normal, point, video

BUILT_IN = ("image", "video", "audio", "point", "depth", "normal", "imu", "fmri")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return synthesize_world(tmp_path_factory.mktemp("world"), per_modality=3, seed=0, progress=False)


def _samples(module, tmp_path: Path, count: int, seed: int = 7) -> list[tuple[dict, list[Path]]]:
    """`count` samples of one generator written straight into tmp_path."""
    name = module.__name__.rsplit(".", 1)[-1]
    out = []
    for i in range(count):
        fields = module.synthesize(tmp_path, f"{name}-{i:06d}", sample_rng(seed, name, i))
        assert not re.search(r"\ba [aeiou]", fields["caption"]), fields["caption"]  # "an orange"
        out.append((fields, [tmp_path / f for f in fields["files"]]))
    return out


# ---- every file is a real file of its format ------------------------------------------


def _check_png(path: Path) -> None:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= 64


def _check_mp4(path: Path) -> None:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == video.SYNTH_FRAMES and frames[0].shape == (video.SYNTH_SIZE, video.SYNTH_SIZE, 3)


def _check_sound(path: Path) -> None:
    data, rate = sf.read(path)
    assert rate in audio.SYNTH_RATES and 2.0 <= len(data) / rate <= 3.0 and np.abs(data).max() > 0.01


def _check_ply(path: Path) -> None:
    cloud = o3d.io.read_point_cloud(str(path))
    assert cloud.has_colors() and len(cloud.points) == point.SYNTH_POINTS


def _check_npy(path: Path) -> None:
    array = np.load(path, allow_pickle=False)
    assert array.ndim == 2 and array.shape[1] == 6 and np.isfinite(array).all()


def _check_csv(path: Path) -> None:
    assert path.read_text().splitlines()[0] == "timestamp,ax,ay,az,gx,gy,gz"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    assert table.shape[1] == 7 and np.all(np.diff(table[:, 0]) > 0)


def _check_nifti(path: Path) -> None:
    data = np.asarray(nib.load(str(path)).dataobj)
    if path.name == fmri.MASK_NAME:
        assert data.shape == (16, 16, 16) and np.count_nonzero(data) == fmri.ROI_VOXELS
    else:
        assert data.shape == (16, 16, 16, fmri.REPETITIONS) and np.isfinite(data).all()


CHECKS = {
    ".png": _check_png,
    ".mp4": _check_mp4,
    ".wav": _check_sound,
    ".flac": _check_sound,
    ".ply": _check_ply,
    ".npy": _check_npy,
    ".csv": _check_csv,
    ".gz": _check_nifti,
}


def test_world_has_a_manifest_per_builtin_modality_of_real_files(world):
    assert set(BUILT_IN) <= set(world) == {*synthesizable_modalities(), *scenes_for(synthesizable_modalities())}
    assert "audiovisual" in world  # video and audio are built in: so is their scene (test_multi_input.py)
    for name in synthesizable_modalities():
        manifest = world[name]
        samples = read_manifest(manifest)
        assert manifest == manifest.parent / f"{name}.jsonl" and len(samples) == 3
        for i, s in enumerate(samples):
            assert s.id == f"{name}-{i:06d}" and s.modality == name and s.split in SPLITS
            assert s.caption and 2 <= len(s.qa) <= 3 and all(q["question"] and q["answer"] for q in s.qa)
            assert all(f.startswith(f"{name}/") for f in s.files)
            assert len(s.files) == 1 + len(get_modality(name).companions)
            for path in s.paths():
                assert path.is_file(), path
                CHECKS[path.suffix](path)
        if name == "imu":
            assert all(s.meta["sample_rate"] in imu.SYNTH_RATES for s in samples)
        if name == "fmri":  # one mask shared by the whole world
            assert {s.files[1] for s in samples} == {f"fmri/{fmri.MASK_NAME}"}


def test_every_format_variant_is_a_real_file(tmp_path):
    """The rarer variants (FLAC, stereo, .npy clouds, CSV traces) appear in a few dozen samples."""
    seen = set()
    for module in (audio, point, imu):
        for _fields, paths in _samples(module, tmp_path, 16):
            CHECKS[paths[0].suffix](paths[0])
            seen.add(paths[0].suffix)
            if module is audio:
                seen.add(f"channels={sf.info(paths[0]).channels}")
    assert {".wav", ".flac", "channels=1", "channels=2", ".ply", ".npy", ".csv"} <= seen


# ---- determinism --------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mp4_frames(data: bytes, tmp: Path) -> np.ndarray:
    tmp.write_bytes(data)
    with av.open(str(tmp)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_same_seed_same_world_other_seed_other_world(world, tmp_path):
    again = synthesize_world(tmp_path / "again", per_modality=3, seed=0, progress=False)
    first, second = _files(next(iter(world.values())).parent), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    for name, data in first.items():
        assert data == second[name], name
    other = synthesize_world(tmp_path / "other", per_modality=3, seed=1, progress=False)
    for name in BUILT_IN:
        assert read_manifest(other[name]) != read_manifest(again[name]), name


def test_workers_do_not_change_the_world(tmp_path):
    kwargs = dict(per_modality=4, seed=5, modalities=["imu", "video"], progress=False)
    serial = synthesize_world(tmp_path / "serial", **kwargs)
    parallel = synthesize_world(tmp_path / "parallel", workers=2, **kwargs)
    for name in serial:
        assert serial[name].read_text() == parallel[name].read_text()
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")


# ---- captions say what the files hold ----------------------------------------------------


def _pixels_of(rgb: np.ndarray, colour: str) -> np.ndarray:
    return np.all(rgb == np.array(COLOURS[colour]), axis=-1)


def test_image_caption_names_the_dominant_colours_at_their_positions(tmp_path):
    for fields, paths in _samples(image, tmp_path, 12):
        rgb = np.asarray(Image.open(paths[0]).convert("RGB"))
        background = np.all(rgb == np.array(BACKGROUNDS[fields["meta"]["background"]]), axis=-1)
        colours, counts = np.unique(rgb[~background].reshape(-1, 3), axis=0, return_counts=True)
        named = {name: np.array(value) for name, value in COLOURS.items()}
        dominant = [next(n for n, v in named.items() if np.array_equal(v, c)) for c in colours[np.argsort(-counts)]]
        shapes = fields["meta"]["shapes"]
        assert sorted(dominant) == sorted(s["colour"] for s in shapes)
        for s in shapes:
            assert s["colour"] in fields["caption"] and s["shape"] in fields["caption"]
            rows, cols = np.nonzero(_pixels_of(rgb, s["colour"]))
            where = {
                "left": cols.mean() < 45,
                "right": cols.mean() > 67,
                "top": rows.mean() < 45,
                "bottom": rows.mean() > 67,
                "centre": abs(cols.mean() - 56) < 5 and abs(rows.mean() - 56) < 5,
            }
            assert where[s["position"]], (s, rows.mean(), cols.mean())


def test_video_shape_moves_the_way_the_caption_says(tmp_path):
    for fields, paths in _samples(video, tmp_path, 12):
        frames = _mp4_frames(paths[0].read_bytes(), tmp_path / "decoded.mp4").astype(int)
        target = np.array(COLOURS[fields["meta"]["colour"]])
        # Compression blurs colours a little; nearness to the named colour finds the shape.
        near = np.abs(frames - target).sum(-1) < 60
        rows, cols = np.nonzero(near[0])
        rows_end, cols_end = np.nonzero(near[-1])
        motion = fields["meta"]["motion"]
        moved = {
            "left": cols_end.mean() - cols.mean() < -20,
            "right": cols_end.mean() - cols.mean() > 20,
            "up": rows_end.mean() - rows.mean() < -20,
            "down": rows_end.mean() - rows.mean() > 20,
            "growing": near[-1].sum() > 3 * near[0].sum(),
            "shrinking": near[0].sum() > 3 * near[-1].sum(),
        }
        assert moved[motion], fields
        assert fields["meta"]["colour"] in fields["caption"] and video.MOTIONS[motion][4] in fields["caption"]


def test_audio_pitch_and_loudness_match_the_caption(tmp_path):
    peaks, levels = {}, {}
    for fields, paths in _samples(audio, tmp_path, 30):
        data, rate = sf.read(paths[0], always_2d=True)
        first = data[:, 0]
        spectrum = np.abs(np.fft.rfft(first))
        meta = fields["meta"]
        peaks.setdefault(meta["pitch"], []).append(np.fft.rfftfreq(len(first), 1 / rate)[spectrum.argmax()])
        levels.setdefault(meta["loudness"], []).append(np.sqrt(np.mean(first**2)))
        assert meta["pitch"] in fields["caption"] and meta["loudness"] in fields["caption"]
    assert max(peaks["low"]) < min(peaks["medium"]) and max(peaks["medium"]) < min(peaks["high"])
    assert max(levels["quiet"]) < min(levels["loud"])


def test_point_cloud_has_the_named_colour_and_shape(tmp_path):
    for fields, paths in _samples(point, tmp_path, 16):
        if paths[0].suffix == ".ply":
            cloud = o3d.io.read_point_cloud(str(paths[0]))
            xyz, rgb = np.asarray(cloud.points), np.asarray(cloud.colors)
        else:
            xyz, rgb = np.split(np.load(paths[0]), 2, axis=1)
        nearest = min(COLOURS, key=lambda c: np.abs(rgb.mean(0) - np.array(COLOURS[c]) / 255).sum())
        assert nearest == fields["meta"]["colour"] and nearest in fields["caption"]
        radii = np.linalg.norm(xyz - xyz.mean(0), axis=1)
        is_round = radii.std() / radii.mean() < 0.05
        assert is_round == (fields["meta"]["shape"] == "sphere"), fields["meta"]


def test_depth_is_ordered_near_middle_far(tmp_path):
    medians = {}
    for fields, paths in _samples(depth, tmp_path, 24):
        millimetres = np.asarray(Image.open(paths[0]))
        assert millimetres.dtype == np.uint16
        rgb = np.asarray(Image.open(paths[1]).convert("RGB"))
        background = np.all(rgb == np.array(BACKGROUNDS[fields["meta"]["background"]]), axis=-1)
        # Depth and RGB show the same view: the object is where the depth is measured.
        assert ((millimetres > 0) == ~background).mean() > 0.99
        medians.setdefault(fields["meta"]["distance"], []).append(np.median(millimetres[millimetres > 0]))
        assert depth.SYNTH_SIZE == millimetres.shape[0] and fields["meta"]["solid"] in fields["caption"]
    assert max(medians["near"]) < min(medians["middle"]) and max(medians["middle"]) < min(medians["far"])


def test_normal_map_is_unit_normals_facing_the_camera_on_the_named_side(tmp_path):
    for fields, paths in _samples(normal, tmp_path, 12):
        encoded = np.asarray(Image.open(paths[0]).convert("RGB")).astype(float)
        surface = encoded.any(axis=-1)
        n = encoded[surface] / 255 * 2 - 1
        assert np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=0.02)
        assert np.mean(n[:, 2] > 0) > 0.95  # z points towards the viewer
        column = np.nonzero(surface)[1].mean()
        side = {"left": column < 40, "centre": 40 <= column <= 56, "right": column > 56}
        assert side[fields["meta"]["side"]], (fields["meta"], column)
        assert ("left" in fields["caption"]) == (fields["meta"]["side"] == "left")


def test_imu_activity_shows_in_the_trace(tmp_path):
    spread, yaw, free_fall = {}, {}, {}
    for fields, paths in _samples(imu, tmp_path, 40):
        if paths[0].suffix == ".csv":
            trace = np.loadtxt(paths[0], delimiter=",", skiprows=1)[:, 1:]
        else:
            trace = np.load(paths[0])
        activity = fields["meta"]["activity"]
        magnitude = np.linalg.norm(trace[:, :3], axis=1)
        spread.setdefault(activity, []).append(magnitude.var())
        yaw.setdefault(activity, []).append(trace[:, 5].sum() / fields["meta"]["sample_rate"])
        free_fall.setdefault(activity, []).append(magnitude.min())
        assert abs(np.median(magnitude) - 9.81) < 2.0  # gravity is in the reading
    assert max(spread["idle"]) < min(spread["walking"]) and max(spread["walking"]) < min(spread["running"])
    assert min(yaw["turning left"]) > 0.8 and max(yaw["turning right"]) < -0.8  # radians turned
    assert max(free_fall["jumping"]) < 1.0 < min(free_fall["idle"] + free_fall["walking"])


def test_fmri_patterns_are_class_specific(tmp_path):
    vectors, classes = [], []
    for fields, paths in _samples(fmri, tmp_path, 24):
        volume = np.asarray(nib.load(str(paths[0])).dataobj).mean(axis=3)
        mask = np.asarray(nib.load(str(paths[1])).dataobj) != 0
        vectors.append(volume[mask])
        classes.append(fields["meta"]["stimulus"])
        assert fields["meta"]["stimulus"].split()[-1] in fields["caption"] or fields["meta"]["stimulus"] == "food"
    corr = np.corrcoef(np.stack(vectors))
    same = np.equal.outer(classes, classes) & ~np.eye(len(classes), dtype=bool)
    different = ~np.equal.outer(classes, classes)
    assert same.any() and corr[same].min() > corr[different].max()


# ---- the loaders read what the world writes -----------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "smollm2"])
@pytest.mark.parametrize("name", BUILT_IN)
def test_loader_turns_every_sample_into_the_preset_input(world, name, preset):
    """The quickstart trains both presets on this world, so every file must fit both."""
    spec = get_modality(name)
    config = OneLLMConfig.from_preset(preset)
    ctx = LoadContext.build(spec.tokenizer, config.encoder, config.modalities[name])
    for sample in read_manifest(world[name]):
        x = spec.load(sample.paths(), ctx, train=False, meta=sample.meta)
        assert tuple(x.shape) == ctx.input_shape and x.isfinite().all(), sample.id


# ---- plugins and the command line -------------------------------------------------------


def test_a_plugin_modality_gets_a_world_too(tmp_path, monkeypatch):
    from onellm import registry

    monkeypatch.syspath_prepend(str(REPO / "examples" / "ecg_plugin"))
    monkeypatch.delitem(sys.modules, "onellm_ecg", raising=False)
    from onellm_ecg import ECG

    registry.register_modality(ECG, source="test")
    try:
        manifests = synthesize_world(tmp_path, per_modality=2, seed=0, modalities=["ecg"], progress=False)
    finally:
        registry.MODALITIES.unregister("ecg")
    samples = read_manifest(manifests["ecg"])
    assert [s.id for s in samples] == ["ecg-000000", "ecg-000001"]
    assert np.load(samples[0].paths()[0]).shape == (5000, 12)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_splits_are_spread_evenly_and_stable_as_the_world_grows(seed):
    for name in BUILT_IN:
        splits = [assign_split(seed, name, i, (0.8, 0.1, 0.1)) for i in range(1000)]
        assert set(splits[:13]) == set(SPLITS), (name, splits[:13])
        counts = {s: splits.count(s) for s in SPLITS}
        assert abs(counts["train"] - 800) <= 5 and abs(counts["test"] - 100) <= 5, counts
        assert splits[:20] == [assign_split(seed, name, i, (0.8, 0.1, 0.1)) for i in range(20)]


def test_unknown_or_unsynthesizable_modality_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="nope"):
        synthesize_world(tmp_path, per_modality=1, modalities=["nope"], progress=False)
    with pytest.raises(ValueError, match="split_fractions"):
        synthesize_world(tmp_path, per_modality=1, split_fractions=(1.0, 0.0), progress=False)


def test_data_synth_command_prints_manifests_and_counts(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="onellm")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["data", "synth", "--out", str(tmp_path), "--per-modality", "5", "--seed", "2", "--modalities", "imu,audio"]
    )
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["imu", "audio"]
    for line in lines:
        name, count = line.split()[:2]
        assert int(count) == 5 and line.endswith(str(tmp_path / f"{name}.jsonl"))
        assert sum(int(n) for n in re.findall(r"=(\d+)", line)) == 5
