"""With every part trainable, the tiny preset memorises one batch of each modality."""

import time

import pytest
import torch

from onellm import OneLLM, OneLLMConfig


@pytest.mark.parametrize("modality", list(OneLLMConfig.from_preset("tiny").modalities))
def test_tiny_overfits_one_batch(modality, captions):
    torch.manual_seed(0)
    model = OneLLM(OneLLMConfig.from_preset("tiny"))
    model.set_trainable(encoder=True, llm=True)
    x = model.tokenizers[modality].example_input(4, torch.Generator().manual_seed(1))
    batch = model.processor(["<modality>"] * 4, answers=captions)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    start, losses = time.perf_counter(), []
    for _ in range(200):
        loss = model(**batch, modality=modality, inputs=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < 0.1 * losses[0]:
            break
    elapsed = time.perf_counter() - start
    print(f"{modality}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps, {elapsed:.1f} s")
    assert losses[-1] < 0.1 * losses[0]
