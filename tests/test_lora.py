"""LoRA on the LM: adapter parameters as the architecture says, only they train in the LM,
export merged or as an adapter, reload to the same outputs; SmolLM2 through the Lightning
training path with gradient checkpointing."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from training_helpers import quiet_trainer

from onellm import OneLLM
from onellm.data.synth.world import synthesize_world
from onellm.model.lora import ADAPTER_WEIGHTS, LoRAConfig
from onellm.processor import PLACEHOLDER
from onellm.training.datamodule import OneLLMDataModule
from onellm.training.module import OneLLMModule


def expected_adapter_size(llm: nn.Module, r: int, targets: list[str]) -> int:
    """r x (in + out) for every linear layer whose name ends in a target."""
    return sum(
        r * (m.in_features + m.out_features)
        for name, m in llm.named_modules()
        if isinstance(m, nn.Linear) and name.split(".")[-1] in targets
    )


def outputs(model: OneLLM, x: torch.Tensor) -> torch.Tensor:
    batch = model.processor([PLACEHOLDER, PLACEHOLDER + " what is it?"])
    with torch.no_grad():
        return model.eval()(**batch, modality="image", inputs=x).logits


@pytest.mark.parametrize("merge", [True, False])
def test_tiny_lora_trains_only_adapters_and_round_trips(tmp_path, merge):
    torch.manual_seed(0)
    model = OneLLM.from_pretrained("tiny")
    targets = ["q_proj", "v_proj"]
    expected = expected_adapter_size(model.llm, 4, targets)
    assert model.add_lora(LoRAConfig(r=4, alpha=8, target_modules=targets, merge=merge)) == expected
    trainable = {n for n, p in model.llm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    base = {n: p.detach().clone() for n, p in model.llm.named_parameters() if "lora_" not in n}

    x = model.tokenizers["image"].example_input(2, torch.Generator().manual_seed(0))
    batch = model.processor([PLACEHOLDER] * 2, answers=["a red circle", "a blue square"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(**batch, modality="image", inputs=x, loss_only=True).loss.backward()
        opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.llm.named_parameters() if "lora_" not in n)
    before = outputs(model, x)

    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert ("lora" in config["llm"]) == (not merge)
    assert (tmp_path / "m" / "llm" / ADAPTER_WEIGHTS).is_file() == (not merge)
    saved = load_file(tmp_path / "m" / "llm" / "model.safetensors")
    assert not [k for k in saved if "lora_" in k or "base_layer" in k]
    q = "model.layers.0.self_attn.q_proj.weight"
    # Merged: the adapters are folded into the plain weights; kept: the base weights as they were.
    assert torch.equal(saved[q], base[q.replace("q_proj.", "q_proj.base_layer.")]) == (not merge)
    again = OneLLM.from_pretrained(tmp_path / "m")
    assert (again.lora is not None) == (not merge)
    torch.testing.assert_close(outputs(again, x), before, atol=1e-5, rtol=1e-5)


def test_adapter_that_does_not_fit_is_refused(tmp_path):
    model = OneLLM.from_pretrained("tiny")
    model.add_lora(LoRAConfig(r=2, merge=False))
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["llm"]["lora"]["r"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="adapter.safetensors"):
        OneLLM.from_pretrained(tmp_path / "m")


@pytest.mark.slow
def test_smollm2_lora_training_exports_and_reloads(tmp_path, caplog):
    manifest = synthesize_world(tmp_path / "world", per_modality=8, modalities=["image"], progress=False)["image"]
    lora = LoRAConfig(r=8, alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], merge=False)
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO):
        module = OneLLMModule(
            model="smollm2",
            modalities=["image"],
            lr=1e-3,
            lora=lora,
            gradient_checkpointing=True,
            export_dir=str(tmp_path / "export"),
        )
    llm = module.model.llm
    assert llm.is_gradient_checkpointing and llm.training
    expected = sum(
        8 * (m.base_layer.in_features + m.base_layer.out_features)
        for name, m in llm.named_modules()
        if name.split(".")[-1] in lora.target_modules and hasattr(m, "base_layer")
    )
    assert expected == 30 * 8 * (576 + 576 + 576 + 192 + 576 + 192 + 576 + 576)  # SmolLM2-135M: 30 layers, GQA
    assert sum(p.numel() for n, p in llm.named_parameters() if p.requires_grad) == expected
    assert f"{expected:,} trainable LM parameters" in caplog.text
    data = OneLLMDataModule([{"manifest": str(manifest), "modality": "image"}], batch_size=2, model=module.model)
    trainer = quiet_trainer(3, tmp_path / "run")
    lora_b = next(p for n, p in llm.named_parameters() if "lora_B" in n).detach().clone()
    trainer.fit(module, data)
    assert not torch.equal(lora_b, next(p for n, p in llm.named_parameters() if "lora_B" in n))

    x = module.model.tokenizers["image"].example_input(2, torch.Generator().manual_seed(1))
    again = OneLLM.from_pretrained(tmp_path / "export")
    assert again.lora is not None and again.lora.r == 8
    torch.testing.assert_close(outputs(again, x), outputs(module.model, x), atol=1e-4, rtol=1e-4)
