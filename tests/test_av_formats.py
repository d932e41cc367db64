"""The audio-visual benchmarks (MUSIC-AVQA, AVSD, VALOR-32K): small annotation files in their
published formats over real videos with a soundtrack, converted by `onellm data convert`
into video+audio manifests, read by the eval tasks through the same parsers, and evaluated
end to end with the tiny model."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from onellm.cli import main
from onellm.data.converters import CONVERTERS, convert
from onellm.data.converters.cli import add_convert_parser
from onellm.data.converters.musicavqa import fill_template
from onellm.data.manifest import read_manifest
from onellm.errors import BadInputError
from onellm.eval.tasks import get_task
from onellm.inputs import load_input
from onellm.tokenizers.video import write_mp4


def write_av(path: Path, seed: int = 0, seconds: float = 1.0, fps: int = 8, rate: int = 16000) -> Path:
    """A tiny video with an AAC soundtrack: both streams of one file, as the benchmarks ship."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(int(seconds * fps))]
    t = np.arange(int(seconds * rate)) / rate
    write_mp4(path, frames, fps, sound=((0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t)).astype(np.float32), rate))
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def avqa(
    video_id: str, question_id: int, kind: list[str], question: str, values: list[str], answer: str, deleted: int = 0
) -> dict:
    """A MUSIC-AVQA entry as published: JSON-text fields and the `anser` key."""
    return {
        "video_id": video_id,
        "question_id": question_id,
        "type": json.dumps(kind),
        "question_content": question,
        "templ_values": json.dumps(values),
        "question_deleted": deleted,
        "anser": answer,
    }


@pytest.fixture
def music_avqa(tmp_path: Path) -> Path:
    """<root>/avqa-{train,test}.json and <root>/videos/: 00000272 and 00000273 exist,
    00000999 (asked about in the test file) does not."""
    root = tmp_path / "music-avqa"
    write_av(root / "videos" / "00000272.mp4", 0)
    write_av(root / "videos" / "00000273.mp4", 1)
    write_json(
        root / "avqa-test.json",
        [
            avqa("00000272", 2, ["Audio", "Counting"], "How many <Object> are in the entire video?", ["piano"], "two"),
            avqa(
                "00000273",
                7,
                ["Audio-Visual", "Location"],
                "Where is the <FL> sounding <Object>?",
                ["first", "violin"],
                "left",
            ),
            avqa("00000272", 9, ["Visual", "Existential"], "Is there a <Object> in the video?", ["cello"], "no"),
            avqa(
                "00000272",
                11,
                ["Audio", "Comparative"],
                "Is the <Object> louder than the <Object>?",
                ["piano", "flute"],
                "yes",
                deleted=1,
            ),
            avqa("00000999", 12, ["Audio", "Counting"], "How many sounding <Object>?", ["guitar"], "one"),
        ],
    )
    write_json(
        root / "avqa-train.json", [avqa("00000273", 1, ["Visual", "Counting"], "How many <Object>?", ["drum"], "three")]
    )
    return root


def convert_cli(argv: list[str], capsys) -> str:
    """`onellm data convert ...` through its argument parser; returns its stderr."""
    parser = argparse.ArgumentParser(prog="onellm")
    add_convert_parser(parser.add_subparsers(dest="command").add_parser("data").add_subparsers(dest="data_command"))
    args = parser.parse_args(["data", "convert", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().err


def test_the_three_formats_are_registered_converters() -> None:
    assert {"music-avqa", "avsd", "valor"} <= set(CONVERTERS)


def test_music_avqa_one_video_and_audio_sample_per_video(music_avqa: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "manifests" / "music-avqa-test.jsonl"
    err = convert_cli(
        [
            "music-avqa",
            str(music_avqa / "avqa-test.json"),
            "--out",
            str(out),
            "--media-root",
            str(music_avqa / "videos"),
            "--check-files",
        ],
        capsys,
    )
    assert "2 samples written" in err and "1 skipped: question marked deleted" in err and "00000999.mp4" in err
    rows = {s.id: s for s in read_manifest(out)}
    assert list(rows) == ["musicavqa-00000272", "musicavqa-00000273"]
    one = rows["musicavqa-00000272"]
    assert (one.modality, one.split, one.meta) == ("video+audio", "test", {"video_id": "00000272"})
    assert one.input_modalities() == ["video", "audio"]
    assert [i["files"] for i in one.inputs] == [["../music-avqa/videos/00000272.mp4"]] * 2  # one file, two streams
    assert one.qa == [
        {
            "question": "How many piano are in the entire video?",
            "answer": "two",
            "question_id": 2,
            "type": ["Audio", "Counting"],
        },
        {
            "question": "Is there a cello in the video?",
            "answer": "no",
            "question_id": 9,
            "type": ["Visual", "Existential"],
        },
    ]
    assert rows["musicavqa-00000273"].qa[0]["question"] == "Where is the first sounding violin?"  # slots in order
    assert [p.resolve() for p in one.paths()] == [(music_avqa / "videos" / "00000272.mp4").resolve()]

    train = tmp_path / "train.jsonl"
    convert("music-avqa", music_avqa / "avqa-train.json", train, music_avqa / "videos")
    [row] = read_manifest(train)
    assert (row.split, row.qa[0]["answer"]) == ("train", "three")


def test_music_avqa_template_and_field_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    assert (
        fill_template("Is the <Object> left of the <Object>?", ["piano", "cello", "spare"])
        == "Is the piano left of the cello?"
    )  # extra values unused, as the benchmark's loader leaves them
    bad = write_json(
        tmp_path / "avqa-val.json", [avqa("1", 1, ["Audio"], "Is the <Object> near the <Object>?", ["piano"], "yes")]
    )
    with pytest.raises(BadInputError, match=r"avqa-val.json.*\[0\].*2 <...> slot\(s\) but templ_values only 1"):
        convert("music-avqa", bad, tmp_path / "x.jsonl", tmp_path)
    entry = avqa("1", 1, ["Audio"], "Is it?", [], "yes")
    del entry["anser"]
    with pytest.raises(BadInputError, match=r"\[0\]: missing field 'anser'"):
        convert("music-avqa", write_json(tmp_path / "avqa-test.json", [entry]), tmp_path / "x.jsonl", tmp_path)
    entry = {**avqa("1", 1, ["Audio"], "Is it?", [], "yes"), "templ_values": "[piano"}
    with pytest.raises(BadInputError, match=r"\[0\]\.templ_values: not JSON text of a list"):
        convert("music-avqa", write_json(tmp_path / "avqa-test.json", [entry]), tmp_path / "x.jsonl", tmp_path)
    with pytest.raises(BadInputError, match="cannot tell the split"):
        convert("music-avqa", write_json(tmp_path / "questions.json", []), tmp_path / "x.jsonl", tmp_path)


def test_one_stream_with_modality_and_other_video_extensions(music_avqa: Path, tmp_path: Path) -> None:
    (music_avqa / "videos" / "00000273.mp4").rename(music_avqa / "videos" / "00000273.mkv")  # re-encoded
    out = tmp_path / "video.jsonl"
    convert("music-avqa", music_avqa / "avqa-test.json", out, music_avqa / "videos", check_files=True, modality="video")
    rows = {s.id: s for s in read_manifest(out)}
    assert rows["musicavqa-00000273"].files == ["music-avqa/videos/00000273.mkv"]
    assert {(s.modality, bool(s.inputs)) for s in rows.values()} == {("video", False)}
    out = tmp_path / "audio-video.jsonl"
    convert("music-avqa", music_avqa / "avqa-test.json", out, music_avqa / "videos", modality="audio+video")
    assert {s.modality for s in read_manifest(out)} == {"audio+video"}
    with pytest.raises(ValueError, match="only video and audio inputs"):
        convert("music-avqa", music_avqa / "avqa-test.json", out, music_avqa / "videos", modality="image")


def test_real_and_synthetic_video_folders_side_by_side(music_avqa: Path, tmp_path: Path) -> None:
    """MUSIC-AVQA ships two video folders: a media root holding only folders is searched in them."""
    videos = music_avqa / "videos"
    (videos / "MUSIC-AVQA-videos-Real").mkdir()
    (videos / "MUSIC-AVQA-videos-Synthetic").mkdir()
    (videos / "00000272.mp4").rename(videos / "MUSIC-AVQA-videos-Real" / "00000272.mp4")
    (videos / "00000273.mp4").rename(videos / "MUSIC-AVQA-videos-Synthetic" / "00000273.mp4")
    report = convert("music-avqa", music_avqa / "avqa-test.json", tmp_path / "m.jsonl", videos, check_files=True)
    assert report.written == 2 and all(s.paths()[0].is_file() for s in read_manifest(tmp_path / "m.jsonl"))


@pytest.fixture
def avsd(tmp_path: Path) -> Path:
    root = tmp_path / "avsd"
    write_av(root / "Charades_v1_480" / "QYYKX.mp4", 2)
    write_av(root / "Charades_v1_480" / "ABCDE.mp4", 3)
    dialog = [
        {"question": "is there sound ?", "answer": "yes , a man is talking ."},
        {"question": "what does he do next ?", "answer": "he opens the fridge ."},
    ]
    write_json(
        root / "test_set4DSTC7-AVSD.json",
        {
            "dialogs": [
                {
                    "image_id": "QYYKX",
                    "caption": "A man walks into the kitchen.",
                    "summary": "a man opens a fridge",
                    "dialog": dialog + [{"question": "does he eat ?", "answer": "__UNDISCLOSED__"}],
                },
                {
                    "image_id": "ABCDE",
                    "caption": "A person sits on a sofa.",
                    "summary": None,
                    "dialog": [{"question": "how many people ?", "answer": "just one ."}],
                },
            ]
        },
    )
    return root


def test_avsd_one_sample_per_dialog_without_hidden_answers(avsd: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "avsd.jsonl"
    err = convert_cli(
        [
            "avsd",
            str(avsd / "test_set4DSTC7-AVSD.json"),
            "--out",
            str(out),
            "--media-root",
            str(avsd / "Charades_v1_480"),
        ],
        capsys,
    )
    assert "2 samples written" in err and "1 skipped: turn with a hidden answer" in err
    rows = {s.id: s for s in read_manifest(out)}
    one = rows["avsd-QYYKX"]
    assert (one.modality, one.split, one.caption) == ("video+audio", "test", "A man walks into the kitchen.")
    assert one.meta["references"] == ["A man walks into the kitchen.", "a man opens a fridge"]
    assert [(q["turn"], q["answer"]) for q in one.qa] == [(0, "yes , a man is talking ."), (1, "he opens the fridge .")]
    assert rows["avsd-ABCDE"].meta["references"] == ["A person sits on a sofa."]  # a null summary is left out
    with pytest.raises(BadInputError, match=r"dialogs\[0\]\.dialog\[1\]: missing field 'answer'"):
        broken = {"dialogs": [{"image_id": "Q", "dialog": [{"question": "a", "answer": "b"}, {"question": "c"}]}]}
        convert("avsd", write_json(tmp_path / "valid_set4DSTC7-AVSD.json", broken), out, avsd)


@pytest.fixture
def valor(tmp_path: Path) -> Path:
    root = tmp_path / "valor"
    write_av(root / "videos" / "abc_000010_000020.mp4", 4)
    write_av(root / "videos" / "xyz_000000_000010.mp4", 5)
    write_json(
        root / "desc_test.json",
        [
            {"video_id": "abc_000010_000020", "desc": "A woman sings while a guitar plays."},
            {"video_id": "xyz_000000_000010", "desc": ["A dog barks at a car.", "  ", "A car passes, a dog barks."]},
            {"video_id": "abc_000010_000020", "desc": "Someone sings to a guitar."},
        ],
    )
    return root


def test_valor_one_caption_sample_per_video_with_every_description(valor: Path, tmp_path: Path) -> None:
    out = tmp_path / "valor.jsonl"
    report = convert("valor", valor / "desc_test.json", out, valor / "videos", check_files=True)
    rows = {s.id: s for s in read_manifest(out)}
    assert report.written == 2 and list(rows) == ["valor-abc_000010_000020", "valor-xyz_000000_000010"]
    one = rows["valor-abc_000010_000020"]
    assert (one.modality, one.split, one.caption) == ("video+audio", "test", "A woman sings while a guitar plays.")
    assert one.meta["references"] == ["A woman sings while a guitar plays.", "Someone sings to a guitar."]
    assert rows["valor-xyz_000000_000010"].meta["references"] == ["A dog barks at a car.", "A car passes, a dog barks."]
    with pytest.raises(BadInputError, match=r"desc_val.json.*\[0\]\.desc: expected str or list"):
        convert("valor", write_json(tmp_path / "desc_val.json", [{"video_id": "v", "desc": 3}]), out, valor)


# ---- eval tasks: the same parsers, one item per question / video --------------------------


def test_eval_readers_use_the_converters(music_avqa: Path, avsd: Path, valor: Path, tiny_model) -> None:
    items = get_task("music-avqa-test").items(music_avqa)
    assert [i.id for i in items] == ["2", "9", "7", "12"]  # question ids, video by video
    assert [i.question for i in items[:2]] == [
        "How many piano are in the entire video?",
        "Is there a cello in the video?",
    ]
    assert items[0].references == ["two"] and items[0].modality == "video+audio"
    for part in items[0].input_list():  # the video's frames and its soundtrack, from one mp4
        x = load_input(part.paths, part.modality, tiny_model.tokenizers[part.modality], meta=part.meta)
        assert tuple(x.shape) == tuple(tiny_model.tokenizers[part.modality].input_shape)

    task = get_task("avsd-test")
    items = task.items(avsd)
    assert [i.id for i in items] == ["avsd-QYYKX#0", "avsd-QYYKX#1", "avsd-ABCDE#0"]
    assert task.question(items[1]) == "what does he do next ?" and items[1].references == ["he opens the fridge ."]
    assert all(i.paths()[0].is_file() for i in items)

    items = get_task("valor32k-test").items(valor)
    assert [i.id for i in items] == ["abc_000010_000020", "xyz_000000_000010"]
    assert items[0].references == ["A woman sings while a guitar plays.", "Someone sings to a guitar."]
    assert items[0].question is None and all(i.paths()[0].is_file() for i in items)


def test_onellm_eval_on_music_avqa_with_the_tiny_model(music_avqa: Path, tmp_path: Path, capsys) -> None:
    """The task and the converted manifest's test split, both video+audio, two items each."""
    manifest = tmp_path / "music-avqa-test.jsonl"
    convert("music-avqa", music_avqa / "avqa-test.json", manifest, music_avqa / "videos", check_files=True)
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--model",
            "tiny",
            "--task",
            "music-avqa-test",
            "--data-root",
            str(music_avqa),
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--max-samples",
            "2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    for task in ("music-avqa-test", "manifest-qa-music-avqa-test"):
        rows = [json.loads(line) for line in (out / task / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(isinstance(r["prediction"], str) for r in rows)
        result = json.loads((out / task / "results.json").read_text())
        assert result["modality"] == "video+audio" and result["skipped"] == 0 and result["samples"] == 2
        assert "accuracy" in result["metrics"]


@pytest.mark.slow
def test_avsd_answers_are_scored_as_captions(avsd: Path) -> None:
    from onellm.eval.runner import score

    task = get_task("avsd-test")
    items = task.items(avsd)
    assert task.kind == "qa" and task.scored_as == "caption"
    metrics = score(task, items, {i.id: i.references[0] for i in items})
    assert metrics["CIDEr"] > 1.0 and "accuracy" not in metrics
