"""Streamed datasets (litdata chunks): `onellm data shards` writes one per split, samples read
back by index give the very inputs the manifest gives, from memory, and bad or foreign data
is counted or refused with a message that says what to do."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from onellm import OneLLMConfig
from onellm.data.dataset import BadSample, ManifestDataset
from onellm.data.manifest import read_manifest
from onellm.data.streamed import StreamedSamples, open_streamed, write_streamed
from onellm.data.synth.world import synthesize_world
from onellm.modality import LoadContext
from onellm.registry import get_modality
from onellm.training.datamodule import DatasetEntry

CONFIG = OneLLMConfig.from_preset("tiny")
CONTEXTS = {
    m: LoadContext.build(get_modality(m).tokenizer, CONFIG.encoder, options) for m, options in CONFIG.modalities.items()
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Images and the audio-visual scene (MP4s with a picture and a soundtrack)."""
    return synthesize_world(
        tmp_path_factory.mktemp("world"),
        per_modality=10,
        modalities=["image", "video", "audio"],
        scenes=["audiovisual"],
        progress=False,
    )


def _seeded(dataset, index: int, seed: int = 7):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return dataset[index]


def test_data_shards_writes_a_litdata_dataset_per_split(world, tmp_path, capsys) -> None:
    from onellm.cli import main

    out = tmp_path / "streamed"
    assert main(["data", "shards", str(world["image"]), str(world["audiovisual"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "streamed:" in printed and len(printed.splitlines()) == 2
    for name in ("image", "audiovisual"):
        counts = {}
        for sample in read_manifest(world[name]):
            counts[sample.split] = counts.get(sample.split, 0) + 1
        for split, n in counts.items():
            config = json.loads((out / name / split / "index.json").read_text())["config"]
            assert config["data_format"] == ["str", "bytes"]
            assert len(open_streamed(str(out / name / split))) == n


@pytest.mark.parametrize("name, modality, chunk", [("image", "image", "2kB"), ("audiovisual", "video+audio", "60kB")])
def test_streamed_samples_give_the_manifests_inputs(world, tmp_path, name, modality, chunk) -> None:
    write_streamed(world[name], tmp_path / name, chunk_bytes=chunk)  # several chunks
    assert len(list((tmp_path / name / "train").glob("chunk-*.bin"))) > 1
    train = [s for s in read_manifest(world[name]) if s.split == "train"]
    held = ManifestDataset(train, CONTEXTS, train=True)
    streamed = StreamedSamples(str(tmp_path / name / "train"), CONTEXTS, modality, train=True)
    assert len(streamed) == len(held)
    for i in reversed(range(len(held))):  # any order: each item is read by index
        (want, want_inputs), (got, got_inputs) = _seeded(held, i), _seeded(streamed, i)
        assert (got.id, got.caption, got.qa, got.input_modalities()) == (
            want.id,
            want.caption,
            want.qa,
            want.input_modalities(),
        )
        assert all(torch.equal(a, b) for a, b in zip(got_inputs, want_inputs))


def test_streamed_samples_are_decoded_without_temporary_files(world, tmp_path, monkeypatch) -> None:
    write_streamed(world["audiovisual"], tmp_path / "av")
    streamed = StreamedSamples(str(tmp_path / "av" / "train"), CONTEXTS, "video+audio")

    def refuse(*args, **kwargs):
        raise AssertionError("a temporary file was made")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, refuse)
    for i in range(len(streamed)):
        assert not isinstance(streamed[i], BadSample)


def test_bad_files_are_left_out_or_counted_never_fatal(world, tmp_path, capsys) -> None:
    from onellm.cli import main

    src = tmp_path / "src"
    samples = [s for s in read_manifest(world["image"]) if s.split == "train"]
    (src / "image").mkdir(parents=True)
    rows = []
    for i, sample in enumerate(samples):
        data = sample.paths()[0].read_bytes()
        if i == 1:
            data = data[: len(data) // 3]  # truncated: packed, then one bad sample in training
        if i != 2:  # missing: left out when packing
            (src / "image" / f"{i}.png").write_bytes(data)
        rows.append({**sample.to_json(), "files": [f"image/{i}.png"]})
    (src / "image.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "shards", str(src / "image.jsonl"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "1 sample(s) left out" in err and "image/2.png" in err
    streamed = StreamedSamples(str(tmp_path / "out" / "train"), CONTEXTS, "image", train=True)
    got = [streamed[i] for i in range(len(streamed))]
    assert len(got) == len(samples) - 1
    bad = [g for g in got if isinstance(g, BadSample)]
    assert len(bad) == 1 and bad[0].id == samples[1].id
    assert f"{tmp_path / 'out' / 'train'}#" in bad[0].reason  # names the stream and the member
    wrong = StreamedSamples(str(tmp_path / "out" / "train"), CONTEXTS, "audio")[0]
    assert isinstance(wrong, BadSample) and "the dataset entry says audio" in wrong.reason


def test_foreign_or_missing_streams_are_refused_with_what_to_do(tmp_path) -> None:
    from litdata.streaming.writer import BinaryWriter

    with pytest.raises(FileNotFoundError, match="onellm data shards"):
        open_streamed(str(tmp_path / "nothing"))
    writer = BinaryWriter(str(tmp_path / "foreign"), chunk_bytes="1MB")
    for i in range(3):
        writer.add_item(i, {"label": i, "weights": np.zeros(4)})
    writer.done()
    writer.merge()
    with pytest.raises(ValueError, match="not an onellm streamed dataset"):
        open_streamed(str(tmp_path / "foreign"))
    with pytest.raises(ValueError, match="either manifest .* or streamed"):
        DatasetEntry(modality="image")
    with pytest.raises(ValueError, match="either manifest .* or streamed"):
        DatasetEntry(modality="image", manifest="a.jsonl", streamed="s3://bucket/image")


def test_data_check_reads_streamed_folders(world, tmp_path, capsys) -> None:
    from onellm.cli import main

    write_streamed(world["image"], tmp_path / "image")
    write_streamed(world["audiovisual"], tmp_path / "av")
    assert main(["data", "check", str(tmp_path / "image"), str(tmp_path / "av")]) == 0
    out = capsys.readouterr().out
    total = sum(1 for _ in read_manifest(world["image"])) + sum(1 for _ in read_manifest(world["audiovisual"]))
    assert f"all {total} checked samples load" in out
    # Damage one member's bytes inside a chunk: check names the stream's member.
    chunk = next((tmp_path / "image" / "train").glob("chunk-*.bin"))
    data = bytearray(chunk.read_bytes())
    start = data.find(b"\x89PNG")
    data[start + 40 : start + 400] = bytes(360)
    chunk.write_bytes(bytes(data))
    assert main(["data", "check", str(tmp_path / "image" / "train")]) == 1
    assert f"{tmp_path / 'image' / 'train'}#" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="onellm data shards"):
        main(["--debug", "data", "check", str(tmp_path)])
