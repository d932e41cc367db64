"""Universal Projection Module: routing, stacked and plain experts, the query-only last
layer, checkpoints of the stacked layout."""

import torch

from onellm.config import UPMConfig
from onellm.convert.legacy import STACKED_UPM_NAMES, split_stacked_upm
from onellm.model.upm import UniversalProjection


def _upm(experts=3, layers=2):
    torch.manual_seed(0)
    return UniversalProjection(
        UPMConfig(num_experts=experts, layers_per_expert=layers, num_queries=5, heads=4, ffn_multiple_of=16),
        width=32,
        llm_width=48,
        modalities=["a", "b"],
    )


def _run_layers(upm, seq, keep=None):
    """Every expert's blocks applied one by one: [E, B, S', W]."""
    outputs = []
    for expert in upm.experts:
        h = seq
        for i, block in enumerate(expert):
            h = block(h, keep=keep if i == len(expert) - 1 else None)
        outputs.append(h)
    return torch.stack(outputs)


def test_routing_weights_sum_to_one_per_token():
    upm = _upm()
    tokens, routing = upm("a", torch.randn(2, 7, 32))
    assert tokens.shape == (2, 5 + 2, 48)
    torch.testing.assert_close(routing.sum(-1), torch.ones(2, 5))
    assert (routing > 0).all()


def test_stacked_experts_equal_plain_experts():
    upm = _upm()
    seq = torch.randn(2, 9, 32, requires_grad=True)
    together = upm.run_experts(seq, stacked=True)
    assert together.shape == (3, 2, 5, 32)
    torch.testing.assert_close(together, upm.run_experts(seq), atol=1e-5, rtol=1e-5)
    for e in range(3):
        torch.testing.assert_close(together[e : e + 1], upm.run_experts(seq, slice(e, e + 1)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])
    # Gradients reach each expert's own weights through the stacking.
    together[1].sum().backward()
    wq = [expert[0].attention["wq"].weight.grad for expert in upm.experts]
    assert wq[0] is None or not wq[0].any()
    assert wq[1].abs().sum() > 0


def test_checkpoint_with_stacked_expert_weights_loads():
    """Models saved before the experts were plain modules hold `layers.{l}.wq` [E, out, in]."""
    upm, feats = _upm(), torch.randn(2, 7, 32)
    want = upm("a", feats)[0]
    state = upm.state_dict()
    for layer in range(2):
        for old, new in STACKED_UPM_NAMES.items():
            state[f"layers.{layer}.{old}"] = torch.stack([state.pop(f"experts.{e}.{layer}.{new}") for e in range(3)])
    fresh = _upm()
    torch.manual_seed(1)
    for p in fresh.parameters():
        p.data.normal_()
    fresh.load_state_dict(split_stacked_upm(state, prefix=""))
    torch.testing.assert_close(fresh("a", feats)[0], want)


def test_batched_and_sequential_settings_give_the_same_tokens():
    upm, feats = _upm(), torch.randn(2, 7, 32)
    upm.config.batch_experts = True
    batched = upm("a", feats)[0]
    upm.config.batch_experts = False
    torch.testing.assert_close(upm("a", feats)[0], batched, atol=1e-5, rtol=1e-5)


def test_last_layer_on_queries_only_matches_full_sequence():
    upm = _upm()
    seq = torch.randn(2, 9, 32)
    torch.testing.assert_close(_run_layers(upm, seq, keep=5), _run_layers(upm, seq)[:, :, :5], atol=1e-5, rtol=1e-5)


def test_output_is_router_weighted_sum_of_expert_queries():
    upm = _upm()
    feats = torch.randn(2, 7, 32)
    tokens, routing = upm("b", feats)
    seq = torch.cat([upm.queries["b"].expand(2, -1, -1), upm.in_proj["b"](feats)], dim=1)
    per_expert = _run_layers(upm, seq)[:, :, :5]
    mixed = sum(per_expert[e] * routing[..., e : e + 1] for e in range(3))
    torch.testing.assert_close(tokens[:, 1:-1], upm.out_proj["b"](mixed), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tokens[:, 0], upm.start_tag["b"][0].expand(2, -1))


def test_tokens_start_at_the_llm_embedding_scale_when_asked(tmp_path):
    from onellm import OneLLM, OneLLMConfig

    config = OneLLMConfig.from_preset("tiny")
    config.modalities = {"image": {}, "audio": config.modalities["audio"]}
    config.upm.match_llm_embeddings = True
    torch.manual_seed(0)
    model = OneLLM(config)
    rows = model.llm.get_input_embeddings().weight.detach()
    for m in model.modalities:
        norm = model.upm.out_proj[m][1]
        assert torch.allclose(norm.weight, rows.std(0)) and torch.allclose(norm.bias, rows.mean(0))
    with torch.no_grad():
        tokens, _ = model.upm("image", torch.randn(4, 17, config.encoder.width))
    ratio = tokens[:, 1:-1].norm(dim=-1).mean() / rows.norm(dim=-1).mean()
    assert 0.7 < float(ratio) < 1.3  # a unit-gain LayerNorm would be sqrt(D) / |row| ~ 50x off here
    # trained weights survive a reload: the initialisation does not overwrite them
    with torch.no_grad():
        model.upm.out_proj["image"][1].weight.fill_(0.5)
    model.save_pretrained(tmp_path / "m")
    again = OneLLM.from_pretrained(tmp_path / "m")
    assert torch.equal(again.upm.out_proj["image"][1].weight, torch.full_like(rows[0], 0.5))
    # off by default (the published recipe starts from unit gain)
    plain = OneLLM(OneLLMConfig.from_preset("tiny"))
    assert torch.equal(plain.upm.out_proj["image"][1].weight, torch.ones_like(rows[0]))
