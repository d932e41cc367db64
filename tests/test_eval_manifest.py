"""`onellm eval --manifest`: any manifest becomes caption / QA tasks, the outputs are where
the command says, classification-like captions get label accuracy beside its baselines, and
caption prompts follow the model's config.prompting unless --bare-prompt / --template force one."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from onellm.cli import main
from onellm.eval import runner
from onellm.eval.labels import label_metrics, label_words, names_label
from onellm.eval.tasks import manifest_tasks
from onellm.processor import PLACEHOLDER

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need Java")

CAPTION_METRICS = {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
LABEL_METRICS = {"label_accuracy", "label_chance", "label_majority"}


def write_manifest(path, animals, split="test"):
    """One small PNG per sample, captioned "a photo of a <animal>", asked which animal it is."""
    rows = []
    for n, animal in enumerate(animals):
        file = path.parent / "images" / f"{n}.png"
        file.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(n).integers(0, 255, (32, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(file)
        rows.append(
            {
                "id": f"s{n}",
                "modality": "image",
                "files": [f"images/{n}.png"],
                "split": split,
                "caption": f"a photo of a {animal}",
                "qa": [{"question": "Which animal is it?", "answer": animal}],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def eval_cli(argv, capsys):
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


class NoCocoScorer:
    """Stands in for the COCO metrics (Java start-ups cost seconds) where a test checks others."""

    spice = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def warm_up(self):
        pass

    def __call__(self, predictions, references):
        return {}


def canned_generate(monkeypatch, answers, prompts=None):
    """Predictions by item id instead of the model's (recording the prompts it was given),
    scored without the COCO metrics."""

    def fake(model, task, items, inputs, prompting, kwargs):
        if prompts is not None:
            prompts.setdefault(task.kind, []).extend(runner.item_prompt(model, task, i, prompting) for i in items)
        return [answers.get(i.id, "") for i in items]

    monkeypatch.setattr(runner, "generate", fake)
    monkeypatch.setattr(runner, "CaptionScorer", NoCocoScorer)


# ---- label accuracy on strings -----------------------------------------------------------


def test_label_words_are_the_words_not_every_reference_shares():
    labels = label_words(["photo of cat", "photo of dog", "photo of black cat"])
    assert labels == {"photo of cat": {"cat"}, "photo of dog": {"dog"}, "photo of black cat": {"black", "cat"}}
    # A reference with no words of its own keeps them all, so it is still a label.
    assert label_words(["cat", "black cat"]) == {"cat": {"cat"}, "black cat": {"black"}}


def test_a_prediction_must_name_its_label_and_no_other():
    labels = label_words(["photo of cat", "photo of dog", "photo of black cat"])
    cat, dog, black_cat = labels["photo of cat"], labels["photo of dog"], labels["photo of black cat"]
    assert names_label("A cat.", cat, labels)
    assert names_label("a photo of a Black cat sitting", black_cat, labels)  # "cat" is part of its own label
    assert not names_label("a black cat", cat, labels)  # names the more specific class
    assert not names_label("a cat or a dog", dog, labels)  # names two classes
    assert not names_label("a catalogue", cat, labels)  # whole words only


def test_label_metrics_with_chance_and_majority_baselines():
    refs = {
        "1": ["a photo of a cat"],
        "2": ["A photo of a cat."],
        "3": ["a photo of a cat"],
        "4": ["a photo of a dog"],
        "5": ["a photo of a black cat"],
    }
    preds = {"1": "a cat", "2": "a black cat", "3": "catalogue", "4": "a cat or a dog", "5": "black cat"}
    metrics = label_metrics(preds, refs)
    assert metrics == pytest.approx({"label_accuracy": 2 / 5, "label_chance": 1 / 3, "label_majority": 3 / 5})
    # The whole split decides the classes: a fourth one there (not evaluated) changes chance only.
    split = [*refs.values(), ["a photo of a bird"]]
    assert label_metrics(preds, refs, split)["label_chance"] == pytest.approx(1 / 4)


def test_label_metrics_only_for_classification_like_references():
    assert label_metrics({"1": "x"}, {"1": ["a cat"]}) == {}  # one class
    assert label_metrics({"1": "x", "2": "y"}, {"1": ["a cat", "a dog"], "2": ["a dog"]}) == {}  # two captions
    many = {str(n): [f"caption number {n}"] for n in range(51)}
    assert label_metrics({k: "x" for k in many}, many) == {}  # a captioning set


# ---- tasks from a manifest ---------------------------------------------------------------


def test_missing_split_is_one_line_listing_the_splits(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "pets.jsonl", ["cat", "dog"], split="train")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({**r, "split": "val"} if r["id"] == "s1" else r) + "\n" for r in rows))
    assert main(["eval", "--model", "tiny", "--manifest", str(manifest), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no samples in the 'test' split; it has train, val" in err
    assert [t.name for t in manifest_tasks(manifest, split="val")] == ["manifest-caption-pets", "manifest-qa-pets"]


def test_mixed_modalities_need_modality(tmp_path):
    manifest = write_manifest(tmp_path / "mixed.jsonl", ["cat", "dog"])
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1] = {**rows[1], "modality": "depth"}
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="mixes modalities depth, image; choose one with --modality"):
        manifest_tasks(manifest)
    (task, _) = manifest_tasks(manifest, modality="image")
    assert [i.id for i in task.items()] == ["s0"]


@needs_java
def test_manifest_run_writes_where_it_says(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "data" / "pets.jsonl", ["cat", "dog", "cat"])
    out, _ = eval_cli(
        [
            "--model",
            "tiny",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--limit",
            "2",
            "--max-new-tokens",
            "2",
            "--batch-size",
            "2",
        ],
        capsys,
    )
    written = {
        task: (predictions, scores)
        for task, predictions, scores in re.findall(r"^(\S+): predictions (\S+), scores (\S+)$", out, re.M)
    }
    assert set(written) == {"manifest-caption-pets", "manifest-qa-pets"}
    for task, (predictions, scores) in written.items():
        assert predictions == str(tmp_path / "out" / task / "predictions.jsonl")
        assert len(open(predictions).read().splitlines()) == 2
        assert json.loads(open(scores).read())["samples"] == 2
    summary = re.search(r"^all tasks: scores (\S+), table (\S+)$", out, re.M)
    results = {r["task"]: r for r in json.loads(open(summary.group(1)).read())["tasks"]}
    assert "manifest-qa-pets" in open(summary.group(2)).read()
    assert CAPTION_METRICS | LABEL_METRICS <= set(results["manifest-caption-pets"]["metrics"])
    assert {"accuracy", "contains_accuracy", "word_accuracy"} <= set(results["manifest-qa-pets"]["metrics"])
    assert results["manifest-qa-pets"]["data_root"] == str(manifest)


def test_scores_of_known_predictions(tmp_path, capsys, monkeypatch):
    manifest = write_manifest(tmp_path / "pets.jsonl", ["cat", "cat", "cat", "dog"])
    canned_generate(
        monkeypatch,
        {
            "s0": "a cat",
            "s1": "a dog",
            "s2": "the cat sits",
            "s3": "A dog.",
            "s0#0": "Cat.",
            "s1#0": "it is a cat",
            "s2#0": "catalogue",
            "s3#0": "dog",
        },
    )
    eval_cli(["--model", "tiny", "--manifest", str(manifest), "--out", str(tmp_path / "out")], capsys)
    caption = json.loads((tmp_path / "out" / "manifest-caption-pets" / "results.json").read_text())["metrics"]
    assert {k: caption[k] for k in LABEL_METRICS} == pytest.approx(
        {"label_accuracy": 3 / 4, "label_chance": 1 / 2, "label_majority": 3 / 4}
    )
    qa = json.loads((tmp_path / "out" / "manifest-qa-pets" / "results.json").read_text())["metrics"]
    # beside it, what answering "cat" (the commonest answer) to every question would score
    assert qa == pytest.approx(
        {"accuracy": 2 / 4, "accuracy_majority": 3 / 4, "contains_accuracy": 1.0, "word_accuracy": 3 / 4}
    )


# ---- prompting follows the model ---------------------------------------------------------


def test_a_bare_model_gets_bare_caption_prompts_unless_template_is_asked(tmp_path, tiny_model, capsys, monkeypatch):
    tiny_model.config.prompting = "bare"
    tiny_model.save_pretrained(tmp_path / "stage3")
    manifest = write_manifest(tmp_path / "pets.jsonl", ["cat", "dog"])
    base = ["--model", str(tmp_path / "stage3"), "--manifest", str(manifest), "--limit", "1"]

    prompts = {}
    canned_generate(monkeypatch, {}, prompts)
    _, err = eval_cli([*base, "--out", str(tmp_path / "default")], capsys)
    assert prompts["caption"] == [PLACEHOLDER] and prompts["qa"] != [PLACEHOLDER]
    assert "not instruction-tuned" in err
    saved = json.loads((tmp_path / "default" / "manifest-caption-pets" / "results.json").read_text())
    assert saved["prompting"] == "bare"

    prompts.clear()
    eval_cli([*base, "--out", str(tmp_path / "forced"), "--template"], capsys)
    assert PLACEHOLDER in prompts["caption"][0] and prompts["caption"][0] != PLACEHOLDER
    saved = json.loads((tmp_path / "forced" / "manifest-caption-pets" / "results.json").read_text())
    assert saved["prompting"] == "template"
    with pytest.raises(SystemExit):
        main(["eval", *base, "--out", str(tmp_path / "both"), "--template", "--bare-prompt"])
