"""Public benchmark readers on files in their published formats, and `onellm eval` runs
(outputs, resume, skipped samples, scoring another system's predictions) with the tiny model."""

import argparse
import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from transformers import GenerationConfig

from onellm.errors import BadInputError
from onellm.eval import runner
from onellm.eval.cli import add_eval_parser
from onellm.eval.items import qa_item
from onellm.eval.metrics import CaptionScorer
from onellm.eval.tasks import QA_PROMPT, EvalTask, get_task, register_task, resolve_tasks, synth_tasks
from onellm.inputs import load_input
from onellm.registry import list_modalities

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need Java")


def write_png(path, seed=0, size=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)).save(path)


def write_wav(path, seconds=1.0, rate=16000):
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def write_mp4(path, frames=12, fps=6):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


def check_loads(items, model):
    for item in items:
        x = load_input(item.paths(), item.modality, model.tokenizers[item.modality], meta=item.meta)
        assert tuple(x.shape) == tuple(model.tokenizers[item.modality].input_shape)


# ---- public formats ----------------------------------------------------------------------


def test_coco_karpathy_reads_test_split_with_raw_sentences(tmp_path, tiny_model):
    images = [
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_1.jpg",
            "split": "test",
            "cocoid": 1,
            "sentences": [{"raw": "A cat on a mat. ", "tokens": ["a", "cat"]}, {"raw": "A sleeping cat."}],
        },
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_2.jpg",
            "split": "val",
            "cocoid": 2,
            "sentences": [{"raw": "Not in the test split."}],
        },
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_3.jpg",
            "split": "test",
            "cocoid": 3,
            "sentences": [{"raw": "Two dogs."}],
        },
    ]
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    for n in (1, 3):
        write_png(tmp_path / "val2014" / f"COCO_val2014_{n}.jpg", n)
    items = get_task("coco-karpathy-test").items(tmp_path)
    assert [i.id for i in items] == ["1", "3"]
    assert items[0].references == ["A cat on a mat.", "A sleeping cat."]
    assert items[1].paths() == [tmp_path / "val2014" / "COCO_val2014_3.jpg"]
    check_loads(items, tiny_model)


def test_clotho_reads_five_captions_per_wav(tmp_path, tiny_model):
    with (tmp_path / "clotho_captions_evaluation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name"] + [f"caption_{n}" for n in range(1, 6)])
        w.writerow(["rain.wav", "Rain falls, steadily, on a roof."] + [f"rain {n}" for n in range(2, 6)])
        w.writerow(["birds.wav"] + [f"birds sing {n}" for n in range(1, 6)])
    write_wav(tmp_path / "evaluation" / "rain.wav")
    write_wav(tmp_path / "evaluation" / "birds.wav", seconds=0.5)
    items = get_task("clotho-caption").items(tmp_path)
    assert [i.id for i in items] == ["rain.wav", "birds.wav"]
    assert items[0].references[0] == "Rain falls, steadily, on a roof."
    assert len(items[1].references) == 5
    check_loads(items, tiny_model)


def test_msvd_qa_maps_video_ids_through_youtube_mapping(tmp_path, tiny_model):
    root = tmp_path / "MSVD-QA"
    root.mkdir()
    (root / "test_qa.json").write_text(
        json.dumps(
            [
                {"answer": "dog", "id": 7, "question": "what is running?", "video_id": 1},
                {"answer": "two", "id": 8, "question": "how many men talk?", "video": "clipB"},
            ]
        )
    )
    (root / "youtube_mapping.txt").write_text("-abc_1_5 vid1\nxyz_2_9 vid2\n")
    write_mp4(tmp_path / "YouTubeClips" / "-abc_1_5.mp4")
    write_mp4(tmp_path / "YouTubeClips" / "clipB.mp4")
    task = get_task("msvd-qa")
    items = task.items(tmp_path)
    assert [(i.id, i.references, i.paths()[0].name) for i in items] == [
        ("7", ["dog"], "-abc_1_5.mp4"),
        ("8", ["two"], "clipB.mp4"),
    ]
    assert task.question(items[0]) == QA_PROMPT.format(question="what is running?")
    assert task.question(items[0]).endswith("\nAnswer the question using a single word or phrase.")
    check_loads(items, tiny_model)


def test_pointllm_reads_gpt_turns_and_8192_point_files(tmp_path, tiny_model):
    anno = tmp_path / "anno_data"
    anno.mkdir()
    rows = [
        {
            "object_id": oid,
            "conversations": [
                {"from": "human", "value": "<point>\nWhat is this?"},
                {"from": "gpt", "value": f"A {oid} model."},
            ],
        }
        for oid in ("chair01", "lamp02")
    ]
    (anno / "PointLLM_brief_description_val_200_GT.json").write_text(json.dumps(rows))
    rng = np.random.default_rng(0)
    (tmp_path / "objaverse_data").mkdir()
    for oid in ("chair01", "lamp02"):
        cloud = np.concatenate([rng.normal(size=(8192, 3)), rng.uniform(size=(8192, 3))], axis=1)
        np.save(tmp_path / "objaverse_data" / f"{oid}_8192.npy", cloud.astype(np.float32))
    task = get_task("pointllm-caption")
    items = task.items(tmp_path)
    assert [(i.id, i.references) for i in items] == [("chair01", ["A chair01 model."]), ("lamp02", ["A lamp02 model."])]
    assert task.question(items[0]) == "What is this?"  # OneLLM's point prompt
    check_loads(items, tiny_model)


def test_pointllm_reads_onellm_own_caption_dict_through_the_converter(tmp_path):
    (tmp_path / "pointllm_test.json").write_text(json.dumps({"chair01": "A chair.", "lamp02": ["A lamp.", "A light."]}))
    (tmp_path / "8192_npy").mkdir()
    for oid in ("chair01", "lamp02"):
        np.save(tmp_path / "8192_npy" / f"{oid}_8192.npy", np.zeros((8192, 6), np.float32))
    items = get_task("pointllm-caption").items(tmp_path)
    assert [(i.id, i.references, i.paths()[0].name) for i in items] == [
        ("chair01", ["A chair."], "chair01_8192.npy"),
        ("lamp02", ["A lamp.", "A light."], "lamp02_8192.npy"),
    ]
    (tmp_path / "pointllm_test.json").write_text(json.dumps({"chair01": 3}))
    with pytest.raises(BadInputError, match="chair01.*a caption or a list of captions"):
        get_task("pointllm-caption").items(tmp_path)


def test_imu_reads_onellm_coco_caption_layout(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    (tmp_path / "imu").mkdir()
    for n in (5, 6):
        np.save(tmp_path / "imu" / f"w{n}.npy", rng.normal(size=(6, 400)).astype(np.float32))
    (tmp_path / "imu_2000_cococap.json").write_text(
        json.dumps(
            {
                "images": [
                    {"id": 5, "file_name": "w5.npy", "video_uid": "u1", "window_start": 1.0, "window_end": 3.0},
                    {"id": 6, "file_name": "w6.npy", "video_uid": "u2", "window_start": 0.0, "window_end": 2.0},
                ],
                "annotations": [
                    {"image_id": 5, "id": 1, "caption": "C opens a door."},
                    {"image_id": 6, "id": 2, "caption": "C walks."},
                    {"image_id": 5, "id": 3, "caption": "C enters."},
                ],
            }
        )
    )
    task = get_task("ego4d-imu-caption")
    items = task.items(tmp_path)
    assert [(i.id, i.references) for i in items] == [("5", ["C opens a door.", "C enters."]), ("6", ["C walks."])]
    # The entry's other keys reach the loader, beside the references (as converters write them).
    assert items[0].meta == {
        "video_uid": "u1",
        "window_start": 1.0,
        "window_end": 3.0,
        "references": ["C opens a door.", "C enters."],
    }
    assert task.question(items[0]) == "Describe the scene."
    check_loads(items, tiny_model)


def test_fmri_reads_plain_list_layout(tmp_path, tiny_model):
    voxels = tiny_model.tokenizers["fmri"].input_shape[0]
    (tmp_path / "fmri").mkdir()
    rng = np.random.default_rng(0)
    for key in ("s1", "s2"):
        np.save(tmp_path / "fmri" / f"{key}.npy", rng.normal(size=(voxels,)).astype(np.float32))
    (tmp_path / "fmri_caption_test.json").write_text(
        json.dumps(
            [
                {"id": "s1", "captions": ["A bus on a street.", "A red bus."]},
                {"id": "s2", "file": "fmri/s2.npy", "caption": "A kitchen."},
            ]
        )
    )
    items = get_task("nsd-fmri-caption").items(tmp_path)
    assert [(i.id, i.references, i.paths()[0].name) for i in items] == [
        ("s1", ["A bus on a street.", "A red bus."], "s1.npy"),
        ("s2", ["A kitchen."], "s2.npy"),
    ]
    check_loads(items, tiny_model)


def test_missing_annotation_file_names_the_places_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="clotho_captions_evaluation.csv"):
        get_task("clotho-caption").items(tmp_path)


# ---- synthetic tasks and runs ------------------------------------------------------------


def test_synth_tasks_follow_the_modality_registry(monkeypatch):
    names = {t.name for t in synth_tasks()}
    assert names == {f"synth-{k}-{m}" for m in list_modalities() for k in ("caption", "qa")}
    monkeypatch.setattr("onellm.eval.tasks.list_modalities", lambda: ["image", "thermal"])
    assert {t.name for t in resolve_tasks("synth-all")} == {
        "synth-caption-image",
        "synth-qa-image",
        "synth-caption-thermal",
        "synth-qa-thermal",
    }


def write_synth_images(root, count, corrupt=()):
    """A tiny image manifest in `onellm data synth`'s format: test samples plus one train one."""
    rows = []
    for n in range(count):
        write_png(root / "image" / f"{n}.png", n)
        if n in corrupt:
            (root / "image" / f"{n}.png").write_bytes(b"not a png")
        rows.append(
            {
                "id": f"image-{n:03d}",
                "modality": "image",
                "files": [f"image/{n}.png"],
                "caption": f"a red circle number {n}",
                "split": "test",
                "qa": [
                    {"question": "What colour is the circle?", "answer": "red"},
                    {"question": "How many circles are there?", "answer": "one"},
                ],
            }
        )
    rows.append({**rows[0], "id": "image-train", "split": "train"})
    (root / "image.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def counting_generate(monkeypatch):
    seen = []
    real = runner.generate

    def wrapper(model, task, items, *args):
        seen.extend(i.id for i in items)
        return real(model, task, items, *args)

    monkeypatch.setattr(runner, "generate", wrapper)
    return seen


def test_qa_run_writes_outputs_and_resumes_without_regenerating(tmp_path, tiny_model, monkeypatch):
    write_synth_images(tmp_path / "data", 3)
    task = get_task("synth-qa-image")
    seen = counting_generate(monkeypatch)
    settings = GenerationConfig(max_new_tokens=4)
    first = runner.run_eval(
        tiny_model,
        [task],
        tmp_path / "data",
        tmp_path / "out",
        settings,
        batch_size=2,
        max_samples=2,
        model_name="tiny",
    )[0]
    assert first["samples"] == 2 and seen == ["image-000#0", "image-000#1"]

    second = runner.run_eval(
        tiny_model, [task], tmp_path / "data", tmp_path / "out", settings, batch_size=2, model_name="tiny"
    )[0]
    all_ids = [f"image-{n:03d}#{q}" for n in range(3) for q in range(2)]
    assert seen == all_ids  # the first two were not generated again
    rows = [json.loads(line) for line in (tmp_path / "out" / task.name / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == all_ids
    assert rows[1]["references"] == ["one"] and rows[1]["question"] == "How many circles are there?"
    assert second["samples"] == 6 and second["skipped"] == 0 and second["generated_this_run"] == 4
    assert second["config_hash"] == first["config_hash"]
    saved = json.loads((tmp_path / "out" / task.name / "results.json").read_text())
    assert saved["metrics"] == second["metrics"] and 0 <= saved["metrics"]["accuracy"] <= 1
    assert saved["model"] == "tiny" and saved["wall_time_s"] > 0
    assert task.name in (tmp_path / "out" / "results.md").read_text()

    with pytest.raises(ValueError, match="another configuration"):
        runner.run_eval(
            tiny_model,
            [task],
            tmp_path / "data",
            tmp_path / "out",
            GenerationConfig(max_new_tokens=5),
            model_name="tiny",
        )


def test_a_registered_task_runs_from_its_own_reader(tmp_path, tiny_model):
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(image)
    item = qa_item("red-1", "image", [image], "What colour is it?", "red")
    task = EvalTask("my-red-qa", "image", "qa", lambda root: [item], max_new_tokens=3)
    register_task(task)
    assert get_task("my-red-qa") is task
    with pytest.raises(ValueError, match="already exists"):
        register_task(task)
    result = runner.evaluate_task(tiny_model, task, tmp_path, tmp_path / "out", batch_size=1)
    assert result["samples"] == 1 and 0 <= result["metrics"]["accuracy"] <= 1
    row = json.loads((tmp_path / "out" / "my-red-qa" / "predictions.jsonl").read_text())
    assert row["id"] == "red-1" and row["question"] == "What colour is it?"


PLUGIN_TASKS = """
from onellm.eval.tasks import EvalTask

def _items(root):
    return []

TASKS = [EvalTask("plugin-caption", "image", "caption", _items), EvalTask("plugin-qa", "image", "qa", _items)]
"""


def test_plugin_tasks_come_from_the_eval_tasks_entry_point(tmp_path, monkeypatch):
    """An `onellm.eval_tasks` entry point may give a list of tasks; a broken one is reported
    by name instead of hiding every other task."""
    from importlib.metadata import EntryPoint

    from onellm.eval import tasks
    from onellm.registry import Registry

    (tmp_path / "onellm_plugin_tasks.py").write_text(PLUGIN_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "onellm.eval_tasks"
    found = [
        EntryPoint("plugin", "onellm_plugin_tasks:TASKS", group),
        EntryPoint("gone", "no_such_plugin:TASKS", group),
    ]
    monkeypatch.setattr("onellm.registry.entry_points", lambda group: found if group == tasks.TASKS.group else [])
    monkeypatch.setattr(tasks, "TASKS", Registry(group, "eval task", tasks._plugin_tasks))
    with pytest.warns(UserWarning, match="eval task plugin 'gone' could not be loaded"):
        assert get_task("plugin-qa").kind == "qa"
    assert {"plugin-caption", "plugin-qa", "coco-karpathy-test"} <= {t.name for t in tasks.list_tasks()}
    with pytest.raises(RuntimeError, match="'gone' is installed but failed to load: .*no_such_plugin"):
        get_task("gone")
    with pytest.raises(KeyError, match="unknown eval task 'nope'"):
        get_task("nope")


def test_a_model_retrained_into_the_same_folder_does_not_resume(tmp_path, tiny_model):
    write_synth_images(tmp_path / "data", 1)
    model_dir = tmp_path / "export"
    tiny_model.save_pretrained(model_dir)
    args = ([get_task("synth-qa-image")], tmp_path / "data", tmp_path / "out", GenerationConfig(max_new_tokens=2))
    runner.run_eval(tiny_model, *args, model_name=str(model_dir))
    runner.run_eval(tiny_model, *args, model_name=str(model_dir))  # unchanged weights: resumes
    tiny_model.save_pretrained(model_dir)
    with pytest.raises(ValueError, match="another configuration"):
        runner.run_eval(tiny_model, *args, model_name=str(model_dir))


def test_unreadable_samples_are_skipped_and_counted(tmp_path, tiny_model):
    write_synth_images(tmp_path / "data", 3, corrupt={1})
    result = runner.evaluate_task(
        tiny_model,
        get_task("synth-qa-image"),
        tmp_path / "data",
        tmp_path / "out",
        GenerationConfig(max_new_tokens=2),
        batch_size=4,
    )
    assert result["skipped"] == 2 and result["samples"] == 4 and result["total"] == 6
    skipped_file = tmp_path / "out" / "synth-qa-image" / "skipped.jsonl"
    skipped = [json.loads(line) for line in skipped_file.read_text().splitlines()]
    assert [s["id"] for s in skipped] == ["image-001#0", "image-001#1"]
    assert "1.png" in skipped[0]["reason"]


@needs_java
def test_caption_run_scores_with_coco_metrics(tmp_path, tiny_model):
    write_synth_images(tmp_path / "data", 2)
    result = runner.run_eval(
        tiny_model,
        [get_task("synth-caption-image")],
        tmp_path / "data",
        tmp_path / "out",
        GenerationConfig(max_new_tokens=6),
        batch_size=2,
        model_name="tiny",
    )[0]
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= set(result["metrics"])
    assert ("SPICE" in result["metrics"]) != ("SPICE" in result["skipped_metrics"])
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| synth-caption-image | image | 2 | 0 |" in table and "CIDEr" in table
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [t["task"] for t in summary["tasks"]] == ["synth-caption-image"]


@pytest.mark.slow
def test_a_given_scorer_serves_several_runs_and_stays_open(tmp_path, tiny_model):
    """The quickstart evaluates nine times: one METEOR process serves them all."""
    write_synth_images(tmp_path / "data", 2)
    tasks, generation = [get_task("synth-caption-image")], GenerationConfig(max_new_tokens=6)

    def run(out, **kw):
        return runner.run_eval(
            tiny_model, tasks, tmp_path / "data", tmp_path / out, generation, batch_size=2, model_name="tiny", **kw
        )[0]["metrics"]

    own = run("own")
    with CaptionScorer(spice=False) as scorer:
        first = run("first", scorer=scorer)
        process = scorer._meteor.meteor_p
        second = run("second", scorer=scorer)
        assert scorer._meteor.meteor_p is process and process.poll() is None
    assert process.poll() is not None
    for name in ("METEOR", "CIDEr", "BLEU-4"):
        assert first[name] == second[name] == own[name]


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_byte_level_models_get_room_for_a_whole_caption(tmp_path, tiny_model):
    """tiny's tokens are bytes: the task's 40 (subword) tokens would cut most captions short."""
    write_synth_images(tmp_path / "data", 2)
    tasks = [get_task("synth-caption-image"), get_task("synth-qa-image")]
    results = runner.run_eval(tiny_model, tasks, tmp_path / "data", tmp_path / "out", batch_size=2, model_name="tiny")
    assert [r["generation"]["max_new_tokens"] for r in results] == [120, 30]
    explicit = runner.run_eval(
        tiny_model,
        tasks[:1],
        tmp_path / "data",
        tmp_path / "out2",
        GenerationConfig(max_new_tokens=7),
        batch_size=2,
        model_name="tiny",
    )
    assert explicit[0]["generation"]["max_new_tokens"] == 7


def test_predictions_file_is_scored_against_task_references(tmp_path, capsys):
    write_synth_images(tmp_path / "data", 2)
    preds = tmp_path / "other_system.jsonl"
    rows = [
        {"id": "image-000#0", "prediction": "Red."},
        {"id": "image-000#1", "prediction": "1"},
        {"id": "image-001#0", "prediction": "blue"},
        {"id": "not-a-task-id", "prediction": "x"},
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_cli(
        [
            "--predictions",
            str(preds),
            "--task",
            "synth-qa-image",
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "scored"),
        ],
        capsys,
    )
    result = json.loads(out)
    assert result["metrics"]["accuracy"] == pytest.approx(2 / 3)  # "Red." == red, "1" == one; blue != red
    assert result["samples"] == 3 and result["missing"] == 1 and result["unknown_ids"] == 1
    assert "synth-qa-image" in (tmp_path / "scored" / "results.md").read_text()


def test_list_shows_public_and_synthetic_tasks(capsys):
    out = run_cli(["--list"], capsys)
    for name in (
        "coco-karpathy-test",
        "clotho-caption",
        "msvd-qa",
        "pointllm-caption",
        "ego4d-imu-caption",
        "nsd-fmri-caption",
        *(f"synth-caption-{m}" for m in list_modalities()),
    ):
        assert name in out
    assert "--manifest" in out  # the way to one's own data
