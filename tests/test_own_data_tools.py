"""Your own files to a manifest: a table with splits (`convert tsv`), a folder (`convert
folder`), manifests from several folders joined (`merge`) and every file loaded (`check`)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onellm.cli import main
from onellm.data.converters import convert
from onellm.data.manifest import read_manifest, write_manifest
from onellm.errors import BadInputError


def _png(path: Path, value: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(value).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _wav(path: Path, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = (np.sin(np.arange(int(16000 * seconds)) / 5) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone.tobytes())
    return path


@pytest.fixture
def own_files(tmp_path: Path) -> Path:
    """my_data/photos/p0..p5.png, my_data/clips/c0.wav and one path,caption,split table of both."""
    data = tmp_path / "my_data"
    for i in range(6):
        _png(data / "photos" / f"p{i}.png", i)
    _wav(data / "clips" / "c0.wav")
    splits = ["train", "validation", "dev", "eval", "testing", "Valid"]
    (data / "table.csv").write_text(
        "path,caption,split\n"
        + "".join(f"photos/p{i}.png,photo {i},{s}\n" for i, s in enumerate(splits))
        + "clips/c0.wav,a hum,train\n"
    )
    return data


def test_table_split_column_and_synonyms_give_each_row_its_split(own_files: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests" / "image.jsonl"
    report = convert("tsv", own_files / "table.csv", out, own_files, modality="image")
    assert list(report.skipped.values()) == [1]  # the audio clip: a table of both converts once per modality
    rows = read_manifest(out)
    assert [(r.caption, r.split) for r in rows] == [
        ("photo 0", "train"),
        ("photo 1", "val"),
        ("photo 2", "val"),
        ("photo 3", "test"),
        ("photo 4", "test"),
        ("photo 5", "val"),
    ]
    assert all(r.paths()[0].is_file() for r in rows)
    report = convert("tsv", own_files / "table.csv", tmp_path / "val.jsonl", own_files, modality="image", split="val")
    assert [r.caption for r in read_manifest(tmp_path / "val.jsonl")] == ["photo 1", "photo 2", "photo 5"]
    assert report.skipped == {"not in the val split": 4}
    convert("tsv", own_files / "table.csv", tmp_path / "audio.jsonl", own_files, modality="audio")
    assert [(r.caption, r.split) for r in read_manifest(tmp_path / "audio.jsonl")] == [("a hum", "train")]


def test_table_without_split_column_labels_all_and_reads_qa_and_jsonl(own_files: Path, tmp_path: Path) -> None:
    table = own_files / "qa.tsv"
    table.write_text("file\tcaption\tquestion\tanswer\nclips/c0.wav\t\tWho hums?\ta man\nclips/c0.wav\ta hum\t\t\n")
    convert("tsv", table, tmp_path / "a.jsonl", own_files, modality="audio", split="test")
    first, second = read_manifest(tmp_path / "a.jsonl")
    assert (first.caption, first.qa, first.split) == (None, [{"question": "Who hums?", "answer": "a man"}], "test")
    assert (second.caption, second.qa, second.split) == ("a hum", [], "test")
    table = own_files / "rows.jsonl"
    table.write_text(
        json.dumps({"path": "photos/p0.png", "caption": "a photo", "set": "dev"})
        + "\n"
        + json.dumps({"path": "photos/p1.png", "caption": "another", "set": "train"})
        + "\n"
    )
    convert("tsv", table, tmp_path / "j.jsonl", own_files, modality="image")
    assert [(r.caption, r.split) for r in read_manifest(tmp_path / "j.jsonl")] == [
        ("a photo", "val"),
        ("another", "train"),
    ]


def test_table_bad_split_value_names_file_line_and_value(own_files: Path, tmp_path: Path) -> None:
    (own_files / "bad.csv").write_text("path,caption,subset\nphotos/p0.png,a,train\nphotos/p1.png,b,holdout\n")
    with pytest.raises(BadInputError, match=r"bad\.csv:3: split 'holdout' is not train, val or test"):
        convert("tsv", own_files / "bad.csv", tmp_path / "m.jsonl", own_files, modality="image")
    assert not (tmp_path / "m.jsonl").exists()
    (own_files / "named.csv").write_text("path,caption,part\nphotos/p0.png,a,train\n")
    with pytest.raises(BadInputError, match=r"no split column 'fold'"):
        convert("tsv", own_files / "named.csv", tmp_path / "m.jsonl", own_files, modality="image", split_column="fold")


def test_folder_imagefolder_layout_with_split_folders(tmp_path: Path, capsys) -> None:
    root = tmp_path / "pets"
    for split, label, name in [
        ("train", "cat", "a"),
        ("train", "red_dog", "b"),
        ("val", "cat", "c"),
        ("test", "red_dog", "d"),
    ]:
        _png(root / split / label / f"{name}.png")
    (root / "train" / "cat" / "a.txt").write_text("a cat asleep\n")  # a sidecar wins over the label
    _png(root / "train" / "cat" / "e.depth.png")  # a depth map's extension: not an image sample
    _png(root / "train" / ".cache" / "x.png")  # hidden: skipped
    out = root / "pets.jsonl"  # inside: a re-run must still see only split folders
    for _ in range(2):
        assert (
            main(
                [
                    "data",
                    "convert",
                    "folder",
                    str(root),
                    "--modality",
                    "image",
                    "--label-from-parent",
                    "--caption-format",
                    "a photo of a {label}",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    rows = {r.id: r for r in read_manifest(out)}
    assert sorted(rows) == ["test/red_dog/d.png", "train/cat/a.png", "train/red_dog/b.png", "val/cat/c.png"]
    assert [(rows[i].caption, rows[i].split) for i in sorted(rows)] == [
        ("a photo of a red dog", "test"),
        ("a cat asleep", "train"),
        ("a photo of a red dog", "train"),
        ("a photo of a cat", "val"),
    ]
    assert rows["val/cat/c.png"].files == ["val/cat/c.png"] and rows["val/cat/c.png"].meta == {"label": "cat"}
    assert all(r.paths()[0].is_file() for r in rows.values())
    assert "4 samples written" in capsys.readouterr().err


def test_folder_hash_split_is_the_same_on_every_run(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for i in range(20):
        _png(root / f"x{i}.png")
    (root / "x0.txt").write_text("the first one")
    splits = []
    for run in range(2):
        convert("folder", root, tmp_path / f"{run}.jsonl", val_fraction=0.3, test_fraction=0.2, modality="image")
        splits.append([(r.id, r.split) for r in read_manifest(tmp_path / f"{run}.jsonl")])
    assert splits[0] == splits[1] and {s for _, s in splits[0]} == {"train", "val", "test"}
    captions = {r.id: r.caption for r in read_manifest(tmp_path / "0.jsonl")}
    assert captions["x0.png"] == "the first one" and captions["x1.png"] is None
    with pytest.raises(BadInputError, match="no label folder above it"):
        convert("folder", root, tmp_path / "l.jsonl", modality="image", label_from_parent=True)


def test_merge_keeps_paths_loading_from_another_folder(own_files: Path, tmp_path: Path, capsys) -> None:
    convert("tsv", own_files / "table.csv", tmp_path / "a" / "image.jsonl", own_files, modality="image")
    audio = tmp_path / "b" / "deep" / "audio.jsonl"
    absolute = str((own_files / "clips" / "c0.wav").absolute())
    audio.parent.mkdir(parents=True)
    audio.write_text(
        json.dumps({"id": "c0", "modality": "audio", "files": ["../../my_data/clips/c0.wav"]})
        + "\n"
        + json.dumps({"id": "c1", "modality": "audio", "files": [absolute]})
        + "\n"
        + json.dumps({"id": "s0", "modality": "image", "files": ["shards/shard-00000.tar#k.png"]})
        + "\n"
    )
    out = tmp_path / "c" / "all.jsonl"
    assert main(["data", "merge", str(tmp_path / "a" / "image.jsonl"), str(audio), "--out", str(out)]) == 0
    merged = {s.id: s for s in read_manifest(out)}
    assert len(merged) == 9 and all(s.paths()[0].is_file() for s in merged.values() if s.id != "s0")
    assert merged["c0"].files == ["../my_data/clips/c0.wav"] and merged["c1"].files == [absolute]
    assert merged["s0"].files == ["../b/deep/shards/shard-00000.tar#k.png"]
    assert "test=2 train=4 val=3" in capsys.readouterr().out.splitlines()[-1]
    assert main(["data", "merge", str(audio), str(out), "--out", str(tmp_path / "d.jsonl")]) == 2
    assert "id 'c0' is also in" in capsys.readouterr().err
    assert main(["data", "merge", str(audio), str(out), "--out", str(tmp_path / "d.jsonl"), "--prefix-ids"]) == 0
    assert "audio/c0" in {s.id for s in read_manifest(tmp_path / "d.jsonl")}


def test_write_manifest_rewrites_samples_read_elsewhere(own_files: Path, tmp_path: Path) -> None:
    convert("tsv", own_files / "table.csv", tmp_path / "a" / "image.jsonl", own_files, modality="image")
    samples = read_manifest(tmp_path / "a" / "image.jsonl")
    write_manifest(tmp_path / "b" / "c" / "copy.jsonl", samples)
    copy = read_manifest(tmp_path / "b" / "c" / "copy.jsonl")
    assert [s.paths()[0].resolve() for s in copy] == [s.paths()[0].resolve() for s in samples]
    write_manifest(tmp_path / "a" / "image.jsonl", samples)  # back where they came from: unchanged
    assert [s.files for s in read_manifest(tmp_path / "a" / "image.jsonl")] == [s.files for s in samples]


def test_check_counts_and_names_truncated_and_missing_files(own_files: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.jsonl"
    write_manifest(
        good,
        [
            {"id": "p0", "modality": "image", "files": ["my_data/photos/p0.png"], "caption": "a", "split": "train"},
            {
                "id": "p1",
                "modality": "image",
                "files": ["my_data/photos/p1.png"],
                "split": "val",
                "qa": [{"question": "q", "answer": "a"}],
            },
            {"id": "c0", "modality": "audio", "files": ["my_data/clips/c0.wav"], "caption": "a hum"},
        ],
    )
    assert main(["data", "check", str(good)]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[:4]}
    assert table["modality"] == ["train", "val", "test", "caption", "qa", "conv", "bad"]
    assert table["image"] == ["1", "1", "0", "1", "1", "0", "0"] and table["all"][:3] == ["2", "1", "0"]
    assert "all 3 checked samples load" in out
    assert "audio: no val split: validation will be skipped" in out
    whole = _png(tmp_path / "big.png", 7, size=64).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    bad = tmp_path / "bad.jsonl"
    write_manifest(
        bad,
        [
            {"id": "cut", "modality": "image", "files": ["cut.png"], "caption": "x"},
            {"id": "gone", "modality": "image", "files": ["gone.png"]},
            {"id": "p0", "modality": "image", "files": ["my_data/photos/p0.png"], "caption": "again"},
        ],
    )
    assert main(["data", "check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "cut.png" in captured.out and "gone.png: image: no such file" in captured.out
    assert "2 of 6 checked samples do not load" in captured.out
    assert (
        "id(s) used more than once (first: p0)" in captured.out and "nothing to train on (first: gone)" in captured.out
    )
    assert "cut.png: image: not a readable image" in captured.out
    summary = captured.err.split("\r")[-1].strip()  # after the progress bar's last redraw
    assert "\n" not in summary and summary.startswith("onellm data check: 2 of 6 samples do not load (first: ")


def test_folder_class_named_train_is_a_label_not_a_split(tmp_path: Path) -> None:
    _png(tmp_path / "vehicles" / "train" / "a.png")
    _png(tmp_path / "vehicles" / "bus" / "b.png")
    convert("folder", tmp_path / "vehicles", tmp_path / "v.jsonl", modality="image", label_from_parent=True)
    assert [(r.caption, r.split) for r in read_manifest(tmp_path / "v.jsonl")] == [("bus", "train"), ("train", "train")]
