"""Named presets load, validate and build; onellm-7b matches the published shapes."""

import pytest
import torch

from onellm import OneLLM, OneLLMConfig, list_presets


def test_presets_listed():
    assert {"tiny", "smollm2", "onellm-7b"} <= set(list_presets())


@pytest.mark.parametrize("name", ["tiny", "smollm2", "onellm-7b"])
def test_preset_configs_validate(name):
    config = OneLLMConfig.from_preset(name)
    assert set(config.modalities) == {"image", "video", "audio", "point", "depth", "normal", "imu", "fmri"}


def test_unknown_preset_and_bad_field_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        OneLLMConfig.from_preset("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "encoder: {width: 64, heads: 4, depth: 3}\nmodalities: {image: {}}\nllm: {random_init: {model_type: llama}}\n"
    )
    with pytest.raises(ValueError, match=r"bad.yaml: encoder: unknown field\(s\) \['depth'\]"):
        OneLLMConfig.from_file(bad)


def test_tiny_has_a_few_million_parameters(tiny_model):
    n = sum(p.numel() for p in tiny_model.parameters())
    assert 1e6 < n < 1e7


def _published_trainable_count() -> int:
    """From the shapes in the official layout file: tokenizers, UPM and tags (encoder and LLM frozen)."""
    W, D, Q, E, L, H = 1024, 4096, 30, 3, 8, 2816
    tokenizers = (
        (16 * 16 * W + W)
        + 1213 * W  # conv1.audio + positional_embedding.audio
        + (6 * W + W)
        + 1025 * W  # conv1.point.conv1 + positional_embedding.point
        + 6 * 10 * W
        + 392 * W  # conv1.imu (no bias) + positional_embedding.imu
        + (15724 * 8192 + 8192)
        + 9 * W  # conv1.fmri + positional_embedding.fmri
    )
    per_modality = (
        (W * W + W + 2 * W)  # clip_proj1: Linear + LayerNorm
        + Q * W  # resample_tokens
        + (W * 4 * W + 4 * W + 4 * W * E + E)  # routers
        + (W * D + D + 2 * D)  # clip_proj2: Linear + LayerNorm
        + 2 * D  # start_tag, end_tag
    )
    experts = E * L * (4 * W * W + 3 * W * H + 2 * W)
    return tokenizers + 8 * per_modality + experts


def test_onellm_7b_on_meta_device_matches_published_trainable_count():
    with torch.device("meta"):
        model = OneLLM(OneLLMConfig.from_preset("onellm-7b"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"onellm-7b: {trainable:,} trainable of {total:,} parameters")
    assert trainable == _published_trainable_count()
    assert model.tokenizers["audio"].num_patches == 1212 and model.tokenizers["imu"].num_patches == 391
    assert model.tokenizers["image"].num_patches == 256 and model.tokenizers["point"].num_patches == 1024
