"""save_pretrained / from_pretrained round trip through safetensors and JSON only."""

import json

import pytest
import torch

from onellm import OneLLM


def test_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    model = tiny_model.eval()
    x = model.tokenizers["point"].example_input(2, torch.Generator().manual_seed(0))
    batch = model.processor([model.processor.prompt("What is this?")] * 2)
    before = model(**batch, modality="point", inputs=x).logits
    model.save_pretrained(tmp_path / "m")
    files = {p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*") if p.is_file()}
    assert {"config.json", "onellm.safetensors", "processor_config.json", "llm/model.safetensors"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".tmp"))]
    processor = json.loads((tmp_path / "m" / "processor_config.json").read_text())
    assert processor["preprocessing"]["point"]["points"] == model.tokenizers["point"].options.points

    loaded = OneLLM.from_pretrained(tmp_path / "m").eval()
    after = loaded(**batch, modality="point", inputs=x).logits
    assert torch.equal(before, after)
    assert loaded.config.modalities == model.config.modalities


def test_missing_directory_and_weights_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a preset"):
        OneLLM.from_pretrained(tmp_path / "absent")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing onellm.safetensors"):
        OneLLM.from_pretrained(tmp_path / "half")


def test_pretrained_encoder_path_must_exist(tmp_path):
    from onellm.config import EncoderConfig
    from onellm.model.encoder import SharedEncoder

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        SharedEncoder(EncoderConfig(width=64, heads=4, layers=1, pretrained=str(tmp_path)))


def test_a_model_saved_with_stacked_upm_experts_loads_the_same(tiny_model, tmp_path):
    """Models saved before the UPM's experts were modules of their own hold `upm.layers.{l}.wq`
    [E, out, in]; onellm.convert.legacy renames them on load."""
    from safetensors.torch import load_file, save_file

    from onellm.convert.legacy import STACKED_UPM_NAMES

    model = tiny_model.eval()
    x = model.tokenizers["image"].example_input(1, torch.Generator().manual_seed(0))
    batch = model.processor([model.processor.prompt("What is this?")])
    before = model(**batch, modality="image", inputs=x).logits
    model.save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "onellm.safetensors")
    experts, layers = model.config.upm.num_experts, model.config.upm.layers_per_expert
    for layer in range(layers):
        for old, new in STACKED_UPM_NAMES.items():
            state[f"upm.layers.{layer}.{old}"] = torch.stack(
                [state.pop(f"upm.experts.{e}.{layer}.{new}") for e in range(experts)]
            )
    save_file(state, tmp_path / "m" / "onellm.safetensors")
    after = OneLLM.from_pretrained(tmp_path / "m").eval()(**batch, modality="image", inputs=x).logits
    assert torch.equal(before, after)
