"""Generation through the modality prefix: KV cache on and off agree token for token."""

import pytest
import torch

from onellm import OneLLM


def _greedy(model, batch, modality, x, use_cache):
    return model.generate(
        **batch, modality=modality, inputs=x, max_new_tokens=12, do_sample=False, use_cache=use_cache, min_new_tokens=12
    )


def test_kv_cache_matches_no_cache_tiny(tiny_model):
    model = tiny_model.eval()
    x = model.tokenizers["audio"].example_input(2, torch.Generator().manual_seed(3))
    prompts = [model.processor.prompt("What do you hear?"), model.processor.prompt("Describe it in detail, please.")]
    batch = model.processor(prompts)
    assert batch["attention_mask"][0, 0] == 0  # left padding for generation
    cached, uncached = _greedy(model, batch, "audio", x, True), _greedy(model, batch, "audio", x, False)
    assert cached.shape == (2, 12)
    assert torch.equal(cached, uncached)


@pytest.mark.slow
def test_smollm2_preset_generates_with_cache_and_chat_template(tmp_path):
    model = OneLLM.from_pretrained("smollm2").eval()
    assert not any(p.requires_grad for p in model.llm.parameters())  # frozen, as published
    prompt = model.processor.prompt("What is in this image?")
    assert "<|im_start|>user" in prompt and prompt.index("<modality>") < prompt.index("What is")
    chat = model.processor.prompt("And its colour?", [("What is in this image?", "A cat.")])
    assert chat.count("<modality>") == 1 and chat.index("<modality>") < chat.index("What is") < chat.index("A cat.")
    assert "<|im_start|>assistant\nA cat." in chat and chat.endswith("<|im_start|>assistant\n")
    x = model.tokenizers["image"].example_input(1, torch.Generator().manual_seed(0))
    batch = model.processor([prompt])
    cached, uncached = _greedy(model, batch, "image", x, True), _greedy(model, batch, "image", x, False)
    assert torch.equal(cached, uncached)
    # The pretrained LM itself is intact: it answers a plain text question sensibly.
    tok = model.processor.tokenizer
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text, return_tensors="pt")
    out = model.llm.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])
    # Its GGUF weights were de-quantized on load, so a trained model saves and reloads.
    model.save_pretrained(tmp_path / "saved")
    again = OneLLM.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        before = model(**batch, modality="image", inputs=x).logits
        after = again(**batch, modality="image", inputs=x).logits
    torch.testing.assert_close(after, before)
    assert not any(p.requires_grad for p in again.llm.parameters())


def test_left_padded_batch_scores_match_single_prompts(tiny_model):
    model = tiny_model.eval()
    x = model.tokenizers["imu"].example_input(2, torch.Generator().manual_seed(5))
    prompts = [model.processor.prompt("Hi?"), model.processor.prompt("What is the person doing right now?")]
    kw = dict(max_new_tokens=4, do_sample=False, output_scores=True, return_dict_in_generate=True)
    together = model.generate(**model.processor(prompts), modality="imu", inputs=x, **kw)
    for i in range(2):
        alone = model.generate(**model.processor(prompts[i : i + 1]), modality="imu", inputs=x[i : i + 1], **kw)
        for step_batch, step_alone in zip(together.scores, alone.scores):
            torch.testing.assert_close(step_batch[i], step_alone[0], atol=1e-4, rtol=1e-4)
