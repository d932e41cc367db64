"""One source per default: a model's generation settings live in its generation_config.json,
read by every caller that does not set its own, and a model is named the same way everywhere."""

import numpy as np
import pytest
from PIL import Image

from onellm.cli import main
from onellm.config import resolve_model
from onellm.demo import app
from onellm.model.llm import DEFAULT_MAX_NEW_TOKENS, GENERATION_CONFIG, decoding
from onellm.model.onellm import OneLLM


@pytest.fixture
def asked(monkeypatch):
    """The settings of every OneLLM.generate call, whoever makes it."""
    calls = []
    generate = OneLLM.generate

    def recording(self, *args, **settings):
        calls.append(settings)
        return generate(self, *args, **settings)

    monkeypatch.setattr(OneLLM, "generate", recording)
    return calls


@pytest.fixture
def saved(tiny_model, tmp_path):
    tiny_model.generation_config.max_new_tokens = 5
    tiny_model.save_pretrained(tmp_path / "model")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    return tmp_path / "model", tmp_path / "a.png"


def test_saved_defaults_reach_answer_cli_and_demo(saved, asked, capsys):
    folder, image = saved
    assert (folder / GENERATION_CONFIG).is_file()
    model = OneLLM.from_pretrained(folder).eval()
    assert model.generation_config.max_new_tokens == 5

    model.caption("image", model.tokenizers["image"].example_input(1))
    assert main(["caption", "--model", str(folder), str(image)]) == 0
    list(app._respond(model, str(image), None, "image", None, [], None))
    assert [call["max_new_tokens"] for call in asked] == [5, 5, 5]
    assert all(call["do_sample"] is False for call in asked)

    assert main(["caption", "--model", str(folder), "--max-new-tokens", "3", str(image)]) == 0
    list(app._respond(model, str(image), None, "image", None, [], decoding(max_new_tokens=2)))
    assert [call["max_new_tokens"] for call in asked[3:]] == [3, 2]  # a caller's own setting wins
    capsys.readouterr()


def test_sampling_defaults_give_way_to_a_greedy_caller(saved, asked):
    folder, image = saved
    model = OneLLM.from_pretrained(folder).eval()
    model.generation_config.update(do_sample=True, temperature=0.7)
    list(app._respond(model, str(image), None, "image", None, [], decoding(max_new_tokens=2)))
    assert asked[-1]["do_sample"] is False


def test_a_model_saved_without_the_file_keeps_the_old_defaults(saved):
    folder, _ = saved
    (folder / GENERATION_CONFIG).unlink()
    model = OneLLM.from_pretrained(folder)
    assert model.generation_config.max_new_tokens == DEFAULT_MAX_NEW_TOKENS == 32
    assert model.generation_config.do_sample is False


def test_resolve_model_names_a_folder_or_a_preset(saved, tmp_path):
    folder, _ = saved
    config, directory = resolve_model(folder)
    assert directory == folder and list(config.modalities) == list(OneLLM.from_pretrained(folder).modalities)
    config, directory = resolve_model("tiny")
    assert directory is None and "image" in config.modalities
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        resolve_model(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a preset"):
        resolve_model(tmp_path / "nowhere")
