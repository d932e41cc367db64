"""Dataset converters: each reads a small file in its dataset's published format and writes
manifest rows whose paths reach the real media; bad input names the file and line/field.
Also: the published-recipe stage configs parse, and their trainable globs hit parameters."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from onellm.data.converters import CONVERTERS, convert
from onellm.data.converters.cli import add_convert_parser
from onellm.data.converters.ego4d_imu import clean_narration
from onellm.data.manifest import read_manifest
from onellm.errors import BadInputError

RECIPES = Path(__file__).resolve().parent.parent / "data_recipes" / "onellm"


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


def _rows(manifest: Path) -> dict[str, object]:
    return {s.id: s for s in read_manifest(manifest)}


@pytest.fixture
def coco(tmp_path: Path) -> tuple[Path, Path]:
    media = tmp_path / "media" / "val2017"
    _png(media / "a.png", 10)
    _png(media / "b.png", 20)  # c.png is never written: --check-files must miss it
    data = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}, {"id": 3, "file_name": "c.png"}],
        "annotations": [
            {"image_id": 1, "caption": "a dark square "},
            {"image_id": 2, "caption": "a grey square"},
            {"image_id": 1, "caption": "black tile"},
            {"image_id": 3, "caption": "gone"},
            {"image_id": 99, "caption": "no such image"},
        ],
    }
    source = tmp_path / "captions_val2017.json"
    source.write_text(json.dumps(data))
    return source, media


def test_coco_captions_one_row_per_image_with_references(coco, tmp_path: Path) -> None:
    source, media = coco
    out = tmp_path / "manifests" / "coco.jsonl"
    report = convert("coco", source, out, media)
    rows = _rows(out)
    assert sorted(rows) == ["coco-1", "coco-2", "coco-3"]
    one = rows["coco-1"]
    assert (one.caption, one.split, one.modality) == ("a dark square", "val", "image")
    assert one.meta["references"] == ["a dark square", "black tile"]
    assert one.files == ["../media/val2017/a.png"]  # relative to the manifest's folder
    assert one.paths()[0].read_bytes() == (media / "a.png").read_bytes()
    assert report.written == 3 and sum(report.skipped.values()) == 1  # the caption of image 99


def test_coco_check_files_drops_and_reports_missing_media(coco, tmp_path: Path) -> None:
    source, media = coco
    report = convert("coco", source, tmp_path / "c.jsonl", media, check_files=True, per_caption=True)
    rows = _rows(tmp_path / "c.jsonl")
    assert sorted(rows) == ["coco-1-0", "coco-1-1", "coco-2-0"]
    assert rows["coco-1-1"].caption == "black tile"
    assert report.missing == [str(media.absolute() / "c.png")]
    assert "1 dropped" in report.summary()


def test_coco_karpathy_splits(tmp_path: Path) -> None:
    _png(tmp_path / "coco" / "val2014" / "x.jpg")
    images = [
        {"filepath": "train2014", "filename": "t.jpg", "split": "train", "cocoid": 5, "sentences": [{"raw": "t"}]},
        {"filepath": "val2014", "filename": "r.jpg", "split": "restval", "cocoid": 6, "sentences": [{"raw": "r"}]},
        {
            "filepath": "val2014",
            "filename": "x.jpg",
            "split": "test",
            "cocoid": 7,
            "sentences": [{"raw": "x1"}, {"raw": "x2"}],
        },
    ]
    source = tmp_path / "dataset_coco.json"
    source.write_text(json.dumps({"images": images, "dataset": "coco"}))
    convert("coco", source, tmp_path / "all.jsonl", tmp_path / "coco")
    assert {k: s.split for k, s in _rows(tmp_path / "all.jsonl").items()} == {
        "coco-5": "train",
        "coco-6": "train",
        "coco-7": "test",
    }
    convert("coco", source, tmp_path / "test.jsonl", tmp_path / "coco", split="test")
    (test,) = read_manifest(tmp_path / "test.jsonl")
    assert test.meta["references"] == ["x1", "x2"] and test.paths()[0].is_file()


def test_coco_bad_input_names_file_and_field(tmp_path: Path) -> None:
    source = tmp_path / "captions_train2017.json"
    source.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1, "caption": "ok"}, {"image_id": 2}]}))
    with pytest.raises(BadInputError, match=r"captions_train2017\.json.*annotations\[1\].*'caption'"):
        convert("coco", source, tmp_path / "m.jsonl", tmp_path)
    source.write_text('{"images": [\n  {"id": 1,\n  oops}]}')
    with pytest.raises(BadInputError, match=r"captions_train2017\.json:3: not valid JSON"):
        convert("coco", source, tmp_path / "m.jsonl", tmp_path)
    assert not (tmp_path / "m.jsonl").exists()


def test_tsv_paths_urls_and_url_map(tmp_path: Path) -> None:
    media = tmp_path / "laion"
    _png(media / "00000" / "000000001.jpg")
    _png(media / "00000" / "000000002.jpg")
    source = tmp_path / "laion.tsv"
    source.write_text(
        "url\tTEXT\twidth\n"
        "https://x.org/1.jpg\ta cat\t8\n"
        "https://x.org/2.jpg\ta dog\t8\n"
        "https://x.org/3.jpg\ta cow\t8\n"
        "00000/000000002.jpg\t\t8\n"
    )
    report = convert("tsv", source, tmp_path / "a.jsonl", media, modality="image")
    assert report.written == 0 and report.skipped["URL without a local copy (give --url-map)"] == 3
    url_map = tmp_path / "map.csv"
    url_map.write_text("url,path\nhttps://x.org/1.jpg,00000/000000001.jpg\nhttps://x.org/2.jpg,00000/000000002.jpg\n")
    report = convert("tsv", source, tmp_path / "b.jsonl", media, modality="image", url_map=url_map)
    rows = list(read_manifest(tmp_path / "b.jsonl"))
    assert [(s.caption, s.paths()[0].resolve()) for s in rows] == [
        ("a cat", (media / "00000" / "000000001.jpg").resolve()),
        ("a dog", (media / "00000" / "000000002.jpg").resolve()),
    ]
    assert report.skipped["empty caption"] == 1


def test_tsv_headerless_columns_companions_and_errors(tmp_path: Path) -> None:
    _png(tmp_path / "m" / "1.depth.png")
    _png(tmp_path / "m" / "1.jpg")
    source = tmp_path / "cc3m.csv"
    source.write_text("a street,1.depth.png,1.jpg\na beach,2.depth.png,2.jpg\n")
    report = convert(
        "tsv",
        source,
        tmp_path / "d.jsonl",
        tmp_path / "m",
        modality="depth",
        check_files=True,
        columns="caption,path,rgb",
        companion_columns="rgb",
    )
    (row,) = read_manifest(tmp_path / "d.jsonl")
    assert row.files == ["m/1.depth.png", "m/1.jpg"] and row.modality == "depth" and len(report.missing) == 1
    with pytest.raises(ValueError, match="--modality"):
        convert("tsv", source, tmp_path / "e.jsonl", tmp_path, columns="caption,path,rgb")
    source.write_text("path,caption\na.png,one\nb.png,two,extra\n")
    with pytest.raises(BadInputError, match=r"cc3m\.csv:3: 3 fields"):
        convert("tsv", source, tmp_path / "e.jsonl", tmp_path, modality="image")
    source.write_text("link,words\na.png,one\n")
    with pytest.raises(BadInputError, match=r"cc3m\.csv:1: no media path column"):
        convert("tsv", source, tmp_path / "e.jsonl", tmp_path, modality="image")


def test_clotho_split_from_file_name(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "rain.wav").write_bytes(b"RIFF")
    source = tmp_path / "clotho_captions_evaluation.csv"
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    source.write_text(header + 'rain.wav,"rain falls, steadily",drops,water,storm,wet\nwind.wav,wind,,,,\n')
    report = convert("clotho", source, tmp_path / "c.jsonl", tmp_path / "audio", check_files=True)
    (row,) = read_manifest(tmp_path / "c.jsonl")
    assert (row.id, row.split, row.caption, row.modality) == ("clotho-rain", "test", "rain falls, steadily", "audio")
    assert len(row.meta["references"]) == 5 and report.missing[0].endswith("wind.wav")
    bad = tmp_path / "captions.csv"
    bad.write_text(header)
    with pytest.raises(BadInputError, match="split"):
        convert("clotho", bad, tmp_path / "c.jsonl", tmp_path)
    assert convert("clotho", bad, tmp_path / "v.jsonl", tmp_path, split="val").written == 0


def test_cap3d_and_pointllm(tmp_path: Path) -> None:
    clouds = tmp_path / "clouds"
    clouds.mkdir()
    np.save(clouds / "abc_8192.npy", np.zeros((8192, 6), np.float32))
    cap3d = tmp_path / "Cap3D_automated_Objaverse.csv"
    cap3d.write_text("abc,a red chair, wooden legs\nzzz,a lamp\n")
    report = convert("cap3d", cap3d, tmp_path / "cap3d.jsonl", clouds, check_files=True)
    (row,) = read_manifest(tmp_path / "cap3d.jsonl")
    assert (row.id, row.caption, row.modality) == ("cap3d-abc", "a red chair, wooden legs", "point")
    assert np.load(row.paths()[0]).shape == (8192, 6) and len(report.missing) == 1

    brief = [
        {
            "object_id": "abc",
            "conversations": [
                {"from": "human", "value": "<point>\nWhat is this?"},
                {"from": "gpt", "value": "A chair."},
            ],
        }
    ]
    complex_ = [
        {
            "object_id": "abc",
            "conversations": [
                {"from": "human", "value": "<point>\nColour?"},
                {"from": "gpt", "value": "Red."},
                {"from": "human", "value": "Legs?"},
                {"from": "gpt", "value": "Four."},
            ],
        }
    ] * 2
    (tmp_path / "brief.json").write_text(json.dumps(brief))
    (tmp_path / "complex.json").write_text(json.dumps(complex_))
    convert("pointllm", tmp_path / "brief.json", tmp_path / "p1.jsonl", clouds)
    (row,) = read_manifest(tmp_path / "p1.jsonl")
    assert row.caption == "A chair." and row.conversations[0]["value"] == "What is this?"
    convert("pointllm", tmp_path / "complex.json", tmp_path / "p2.jsonl", clouds)
    rows = read_manifest(tmp_path / "p2.jsonl")
    assert [r.id for r in rows] == ["pointllm-abc", "pointllm-abc-1"] and rows[0].caption is None
    assert len(rows[0].conversations) == 4
    (tmp_path / "bad.json").write_text(json.dumps([{"object_id": "abc", "conversations": [{"from": "human"}]}]))
    with pytest.raises(BadInputError, match=r"bad\.json.*\[0\]\.conversations\[0\].*'value'"):
        convert("pointllm", tmp_path / "bad.json", tmp_path / "p3.jsonl", clouds)


def test_ego4d_imu_windows_and_cleaning(tmp_path: Path) -> None:
    imu = tmp_path / "imu"
    imu.mkdir()
    np.save(imu / "v1.npy", np.zeros((2000, 6), np.float32))
    narrations = {
        "v1": {
            "narration_pass_1": {
                "narrations": [
                    {"timestamp_sec": 0.4, "narration_text": "#C C opens the fridge"},
                    {"timestamp_sec": 5.0, "narration_text": "#O man X hands C a cup #unsure"},
                    {"timestamp_sec": 6.0, "narration_text": "#C"},
                ]
            }
        },
        "v2": {"narration_pass_1": {"narrations": [{"timestamp_sec": 1.0, "narration_text": "#C C walks"}]}},
        "v3": {"status": "redacted"},
    }
    source = tmp_path / "narration.json"
    source.write_text(json.dumps(narrations))
    report = convert("ego4d-imu", source, tmp_path / "imu.jsonl", imu, check_files=True, sample_rate=200.0)
    rows = read_manifest(tmp_path / "imu.jsonl")
    assert [r.caption for r in rows] == ["opens the fridge", "man X hands C a cup"]
    assert [(r.meta["start"], r.meta["end"]) for r in rows] == [(0.0, 2.0), (4.0, 6.0)]
    assert rows[0].meta["sample_rate"] == 200.0 and rows[0].paths()[0] == (imu / "v1.npy").absolute()
    assert len(report.missing) == 1 and report.skipped["video without narrations"] == 1
    assert report.skipped["narration with no text after its tags"] == 1
    assert clean_narration("#c c picks up a knife.") == "picks up a knife"
    narrations["v1"]["narration_pass_1"]["narrations"][1]["timestamp_sec"] = "late"
    source.write_text(json.dumps(narrations))
    with pytest.raises(BadInputError, match=r"narration\.json.*v1\.narration_pass_1\.narrations\[1\]\.timestamp_sec"):
        convert("ego4d-imu", source, tmp_path / "imu.jsonl", imu)


def test_nsd_stim_info_with_coco_captions(tmp_path: Path) -> None:
    fmri = tmp_path / "subj01"
    fmri.mkdir()
    for name in ("5_0", "5_1", "7", "8"):
        np.save(fmri / f"{name}.npy", np.ones((3, 16), np.float32))
    coco = tmp_path / "captions_train2017.json"
    coco.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [
                    {"image_id": 100, "caption": "a bus"},
                    {"image_id": 100, "caption": "a red bus"},
                    {"image_id": 200, "caption": "a cat"},
                    {"image_id": 300, "caption": "a kite"},
                ],
            }
        )
    )
    stim = tmp_path / "nsd_stim_info_merged.csv"
    stim.write_text(",cocoId,nsdId,shared1000\n0,100,5,False\n1,200,7,True\n2,300,9,False\n")
    report = convert("nsd", stim, tmp_path / "nsd.jsonl", fmri, coco_captions=[coco], shared1000_test=True)
    rows = _rows(tmp_path / "nsd.jsonl")
    assert sorted(rows) == ["nsd-5-0", "nsd-5-1", "nsd-7"]
    assert rows["nsd-5-1"].meta["references"] == ["a bus", "a red bus"] and rows["nsd-5-1"].split == "train"
    assert rows["nsd-7"].split == "test" and rows["nsd-7"].paths()[0] == (fmri / "7.npy").absolute()
    assert report.skipped == {"fMRI file whose stimulus has no caption": 1, "captioned stimulus without fMRI files": 1}
    convert("nsd", stim, tmp_path / "test.jsonl", fmri, split="test", coco_captions=[coco], shared1000_test=True)
    assert [(r.id, r.split) for r in read_manifest(tmp_path / "test.jsonl")] == [("nsd-7", "test")]
    stim.write_text("nsdId,cocoId\n5,100\n6,999\n")
    with pytest.raises(BadInputError, match=r"nsd_stim_info_merged\.csv:3: cocoId 999"):
        convert("nsd", stim, tmp_path / "nsd.jsonl", fmri, coco_captions=[coco])
    (tmp_path / "caps.json").write_text(json.dumps({"8": "a boat"}))
    convert("nsd", tmp_path / "caps.json", tmp_path / "n2.jsonl", fmri)
    assert [r.caption for r in read_manifest(tmp_path / "n2.jsonl")] == ["a boat"]


def test_llava_modality_from_media_key(tmp_path: Path) -> None:
    _png(tmp_path / "coco" / "000000033471.jpg")
    items = [
        {
            "id": "000000033471",
            "image": "000000033471.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the bus?"},
                {"from": "gpt", "value": "Red."},
            ],
        },
        {"id": "t1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {
            "id": "v1",
            "video": "v1.mp4",
            "conversations": [
                {"from": "human", "value": "What happens? <video>"},
                {"from": "gpt", "value": "A dance."},
            ],
        },
    ]
    source = tmp_path / "llava_instruct_150k.json"
    source.write_text(json.dumps(items))
    report = convert("llava", source, tmp_path / "l.jsonl", tmp_path / "coco")
    rows = _rows(tmp_path / "l.jsonl")
    assert sorted(rows) == ["llava-000000033471", "llava-v1"]
    image = rows["llava-000000033471"]
    assert image.modality == "image" and image.paths()[0].is_file()
    assert image.conversations[0] == {"from": "human", "value": "What colour is the bus?"}
    assert rows["llava-v1"].modality == "video" and rows["llava-v1"].conversations[0]["value"] == "What happens?"
    assert report.skipped["item without a media file (text-only)"] == 1
    convert("llava", source, tmp_path / "d.jsonl", tmp_path / "coco", modality="depth", media_key="image")
    assert [r.modality for r in read_manifest(tmp_path / "d.jsonl")] == ["depth"]


def test_cli_convert_subcommand(coco, tmp_path: Path, capsys) -> None:
    source, media = coco
    parser = argparse.ArgumentParser(prog="onellm")
    data = parser.add_subparsers(dest="command").add_parser("data").add_subparsers(dest="data_command")
    add_convert_parser(data)
    out = tmp_path / "cli.jsonl"
    args = parser.parse_args(
        [
            "data",
            "convert",
            "coco",
            str(source),
            "--out",
            str(out),
            "--media-root",
            str(media),
            "--check-files",
            "--split",
            "train",
        ]
    )
    assert args.func(args) == 0
    assert {s.split for s in read_manifest(out)} == {"train"} and len(read_manifest(out)) == 2
    err = capsys.readouterr().err
    assert "2 samples written" in err and "c.png" in err
    for name in CONVERTERS:  # every format has its sub-command with the common options
        assert parser.parse_args(["data", "convert", name, "x", "--out", "o", "--media-root", "m"]).format == name


@pytest.mark.slow
def test_recipe_configs_print_with_onellm_fit() -> None:
    configs = sorted(RECIPES.glob("*.yaml"))
    assert [c.name for c in configs] == [
        "stage1-image.yaml",
        "stage2-video-audio-point.yaml",
        "stage3-depth-normal-imu-fmri.yaml",
        "stage4-instruct.yaml",
        "stage5-audio-visual.yaml",
    ]
    # `onellm fit --config X --print_config` for each X in one subprocess: the torch +
    # lightning import dominates, and a process per config made this test 5x slower.
    script = (
        "import sys\nfrom onellm.cli import main\nfor c in sys.argv[1:]:\n"
        "    print('### ' + c, flush=True)\n"
        "    try:\n        main(['fit', '--config', c, '--print_config'])\n"
        "    except SystemExit as e:\n        assert not e.code, f'{c}: exit {e.code}'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, *map(str, configs)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout.split("### ")[1:]
    assert len(printed) == len(configs)
    for config, text in zip(configs, printed):
        name, _, body = text.partition("\n")
        assert name == str(config)
        assert yaml.safe_load(body)["model"]["modalities"] == yaml.safe_load(config.read_text())["model"]["modalities"]


@pytest.mark.parametrize("config", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_recipe_trainable_globs_match_and_freeze_encoder(config: Path) -> None:
    from onellm.training.module import OneLLMModule

    model = yaml.safe_load(config.read_text())["model"]
    assert model["model"] == "smollm2" and all(
        d["manifest"].startswith("$DATA_ROOT/") for d in yaml.safe_load(config.read_text())["data"]["datasets"]
    )
    # The tiny preset has the same parameter names: a glob matching nothing raises here.
    module = OneLLMModule(model="tiny", modalities=model["modalities"], trainable=model["trainable"])
    trained = {n.split(".")[0] for n, p in module.model.named_parameters() if p.requires_grad}
    assert "encoder" not in trained
    assert ("llm" in trained) == config.name.startswith(("stage4", "stage5"))  # the instruction stages


LINES_CONVERTER = """
from onellm.data.manifest import Sample

HELP = "one 'file|caption' per line"
MODALITY = "image"


def add_arguments(parser):
    parser.add_argument("--prefix", default="", help="id prefix")


def samples(path, media, split=None, modality=None, prefix=""):
    for n, line in enumerate(path.read_text().splitlines()):
        name, caption = line.split("|")
        yield Sample(id=f"{prefix}{n}", modality=modality or MODALITY, files=media.files([name]), caption=caption,
                     split=split or "train")
"""


def test_a_plugin_converter_registers_like_the_built_ins(tmp_path: Path, monkeypatch) -> None:
    from onellm.data.converters import register_converter

    assert CONVERTERS.group == "onellm.converters" and CONVERTERS.source("coco") == "onellm-any"
    (tmp_path / "onellm_lines.py").write_text(LINES_CONVERTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import onellm_lines

    register_converter("lines", onellm_lines)
    try:
        _png(tmp_path / "media" / "a.png")
        (tmp_path / "list.txt").write_text("a.png|a black square\n")
        parser = argparse.ArgumentParser(prog="onellm")
        add_convert_parser(parser.add_subparsers(dest="data_command"))
        out = tmp_path / "lines.jsonl"
        args = parser.parse_args(
            [
                "convert",
                "lines",
                str(tmp_path / "list.txt"),
                "--out",
                str(out),
                "--media-root",
                str(tmp_path / "media"),
                "--prefix",
                "p",
            ]
        )
        assert args.func(args) == 0
        [row] = read_manifest(out)
        assert row.id == "p0" and row.caption == "a black square" and row.paths()[0].is_file()
        with pytest.raises(ValueError, match="already registered"):
            register_converter("lines", onellm_lines)
    finally:
        CONVERTERS.unregister("lines")
    with pytest.raises(ValueError, match="unknown dataset format 'lines'; installed: .*coco"):
        convert("lines", tmp_path / "list.txt", out, tmp_path / "media")
