"""One prompting path: the model's answer(), the eval runner and the demo's handler, asked
the same thing about the same file, give the processor the same prompt and say the same."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from onellm.config import Prompting
from onellm.demo import app
from onellm.eval import runner
from onellm.eval.tasks import manifest_tasks
from onellm.inputs import load_input
from onellm.model.llm import decoding

NEW_TOKENS = 12


class _NoScorer:
    """The captions' COCO metrics need Java; this test compares predictions, not scores."""

    spice = False

    def __call__(self, predictions, references):
        return {}


@pytest.fixture
def image_manifest(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cat.png")
    row = {
        "id": "s0",
        "modality": "image",
        "files": ["cat.png"],
        "split": "test",
        "caption": "a cat",
        "qa": [{"question": "Which animal is it?", "answer": "cat"}],
    }
    (tmp_path / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    return tmp_path / "manifest.jsonl"


@pytest.fixture
def recorded(tiny_model, monkeypatch):
    """The tiny model, says something (end-of-text below every byte) and records every batch
    of prompts its processor turns into model inputs."""
    with torch.no_grad():
        tiny_model.llm.get_output_embeddings().weight[tiny_model.processor.tokenizer.eos_token_id] = 0
    prompts = []
    model_inputs = tiny_model.processor.model_inputs
    monkeypatch.setattr(
        tiny_model.processor,
        "model_inputs",
        lambda texts, inputs: prompts.append(list(texts)) or model_inputs(texts, inputs),
    )
    return tiny_model.eval(), prompts


def _eval_answer(model, manifest, kind, out):
    task = next(t for t in manifest_tasks(manifest) if t.kind == kind)
    runner.evaluate_task(model, task, None, out, decoding(max_new_tokens=NEW_TOKENS), scorer=_NoScorer())
    rows = [json.loads(line) for line in (out / task.name / runner.PREDICTIONS).read_text().splitlines()]
    return rows[0]["prediction"]


def _demo_answer(model, file, question):
    updates = list(app._respond(model, str(file), None, "image", question, [], decoding(max_new_tokens=NEW_TOKENS)))
    return updates[-1][0][-1]["content"]


@pytest.mark.parametrize("prompting", list(Prompting))
def test_caption_is_asked_and_answered_alike_everywhere(recorded, image_manifest, tmp_path, prompting):
    model, prompts = recorded
    model.config.prompting = prompting.value
    x = load_input([image_manifest.parent / "cat.png"], "image", model.tokenizers["image"], train=False)
    answered = model.answer({"image": x.unsqueeze(0)}, max_new_tokens=NEW_TOKENS)[0]
    evaluated = _eval_answer(model, image_manifest, "caption", tmp_path / "eval")
    demoed = _demo_answer(model, image_manifest.parent / "cat.png", None)

    expected = "<modality>" if prompting is Prompting.BARE else model.processor.request(["image"])
    assert prompts == [[expected]] * 3
    assert answered == evaluated == demoed != ""


def test_question_is_asked_and_answered_alike_everywhere(recorded, image_manifest, tmp_path):
    model, prompts = recorded
    model.config.prompting = Prompting.BARE.value  # a question is asked in the template all the same
    x = load_input([image_manifest.parent / "cat.png"], "image", model.tokenizers["image"], train=False)
    answered = model.answer({"image": x.unsqueeze(0)}, "Which animal is it?", max_new_tokens=NEW_TOKENS)[0]
    evaluated = _eval_answer(model, image_manifest, "qa", tmp_path / "eval")
    demoed = _demo_answer(model, image_manifest.parent / "cat.png", "Which animal is it?")

    assert prompts == [[model.processor.prompt("Which animal is it?")]] * 3
    assert answered == evaluated == demoed != ""
