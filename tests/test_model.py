"""The tiny model end to end: shapes, gradients, padding, merge checks."""

import pytest
import torch

from onellm import OneLLMConfig

MODALITIES = list(OneLLMConfig.from_preset("tiny").modalities)


def example_batch(model, modality, n=2, seed=0):
    return model.tokenizers[modality].example_input(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("modality", MODALITIES)
def test_modality_tokens_and_gradients(tiny_model, captions, modality):
    model = tiny_model
    model.set_trainable(encoder=False, llm=False)
    x = example_batch(model, modality)
    tokens, routing = model.encode(modality, x)
    q, d = model.config.upm.num_queries, model.llm.config.hidden_size
    assert tokens.shape == (2, q + 2, d)  # start tag, Q tokens, end tag
    assert tokens[:, 1:-1].shape == (2, q, d)
    assert routing.shape == (2, q, model.config.upm.num_experts)

    batch = model.processor(["<modality>"] * 2, answers=captions[:2])
    model(**batch, modality=modality, inputs=x).loss.backward()
    trained = [
        model.tokenizers[modality],
        model.upm.in_proj[modality],
        model.upm.routers[modality],
        model.upm.out_proj[modality],
        model.upm.experts,
    ]
    for module in trained:
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{modality}: no gradient at {name}"
    for name in ("queries", "start_tag", "end_tag"):
        assert getattr(model.upm, name)[modality].grad.abs().sum() > 0
    frozen = list(model.encoder.parameters()) + list(model.llm.parameters())
    assert all(p.grad is None for p in frozen)
    others = [m for m in MODALITIES if m != modality]
    assert all(model.upm.queries[m].grad is None for m in others)


def test_right_padded_batch_matches_single_samples(tiny_model):
    model = tiny_model.eval()
    x = example_batch(model, "image")
    batch = model.processor(["<modality>", "<modality> a longer prompt"], answers=["a cat", "a dog on grass"])
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    logits = model(**batch, modality="image", inputs=x).logits
    for i in range(2):
        single = model.processor(
            [["<modality>", "<modality> a longer prompt"][i]], answers=[["a cat", "a dog on grass"][i]]
        )
        alone = model(**single, modality="image", inputs=x[i : i + 1]).logits[0]
        n = alone.shape[0]
        torch.testing.assert_close(logits[i, :n], alone, atol=1e-5, rtol=1e-4)


def test_labels_cover_only_the_answer(tiny_model):
    proc = tiny_model.processor
    batch = proc(["<modality>describe"], answers=["ok"])
    labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert labelled == proc.tokenizer("ok", add_special_tokens=False)["input_ids"] + [proc.tokenizer.eos_token_id]
    assert not (batch["modality_mask"] & (batch["labels"] != -100)).any()
    assert int(batch["modality_mask"].sum()) == tiny_model.config.upm.num_queries + 2


def test_mismatched_placeholders_are_refused(tiny_model):
    batch = tiny_model.processor(["<modality>hi"])
    x = example_batch(tiny_model, "imu", n=2)
    with pytest.raises(ValueError, match="modality positions"):
        tiny_model(**batch, modality="imu", inputs=x)


def test_wrong_input_shape_names_the_expected_shape(tiny_model):
    batch = tiny_model.processor(["<modality>hi"])
    with pytest.raises(ValueError, match=r"expects input \[B, 6, 400\]"):
        tiny_model(**batch, modality="imu", inputs=torch.zeros(1, 6, 300))


def test_unknown_modality_is_a_clear_error(tiny_model):
    with pytest.raises(KeyError, match="no 'thermal' tokenizer"):
        tiny_model.encode("thermal", torch.zeros(1, 3))


def test_router_statistics_per_modality(tiny_model):
    for modality in ("image", "audio"):
        tiny_model.encode(modality, example_batch(tiny_model, modality, n=3))
    stats = tiny_model.router_statistics(reset=True)
    assert set(stats) == {"image", "audio"}
    for s in stats.values():
        assert s["tokens"] == 3 * tiny_model.config.upm.num_queries
        assert abs(sum(s["mean_weight"]) - 1) < 1e-5
    assert tiny_model.router_statistics() == {}


def test_add_modality_starts_from_image(tiny_model):
    model = tiny_model
    del model.tokenizers["fmri"]
    for table in (
        model.upm.in_proj,
        model.upm.routers,
        model.upm.out_proj,
        model.upm.queries,
        model.upm.start_tag,
        model.upm.end_tag,
    ):
        del table["fmri"]
    model.add_modality("fmri", {"voxels": 64, "tokens": 4})
    torch.testing.assert_close(model.upm.queries["fmri"], model.upm.queries["image"])
    torch.testing.assert_close(model.upm.routers["fmri"][0].weight, model.upm.routers["image"][0].weight)
    assert model.upm.queries["fmri"].data_ptr() != model.upm.queries["image"].data_ptr()
    tokens, _ = model.encode("fmri", torch.randn(2, 64))
    assert tokens.shape[1] == model.config.upm.num_queries + 2


def test_loss_only_matches_the_full_forward(tiny_model):
    model = tiny_model.eval()
    x = example_batch(model, "image")
    batch = model.processor(["<modality>", "<modality> a longer prompt"], answers=["a cat", "a dog on grass"])
    full = model(**batch, modality="image", inputs=x)
    lean = model(**batch, modality="image", inputs=x, loss_only=True)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert lean.logits.shape == (labelled, full.logits.shape[-1])
    torch.testing.assert_close(lean.loss, full.loss, atol=1e-6, rtol=1e-5)
    shifted = full.logits[:, :-1][batch["labels"][:, 1:] != -100]
    torch.testing.assert_close(lean.logits, shifted, atol=1e-5, rtol=1e-5)
