"""`onellm convert-official`: a small random checkpoint in the published layout converts to a
loadable model whose logits match the official math for every modality, and back bit for bit."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from onellm import OneLLM
from onellm.convert.convert import convert_official
from onellm.convert.official import to_official
from onellm.errors import BadInputError

_spec = importlib.util.spec_from_file_location("official_reference", Path(__file__).with_name("official_reference.py"))
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

# Scaled-down sizes; the 7B release has W=1024, 24 blocks, D=4096, 32 layers, Q=30, E=3, L_u=8.
W, CLIP_BLOCKS, PATCH, GRID = 64, 2, 14, 4
D, LAYERS, FFN = 128, 2, 352
Q, E, L_U, UPM_HIDDEN = 4, 3, 1, 256  # 256 = LLaMA's rounding of 8/3 x 64
AUDIO_FRAMES, IMU_SAMPLES, VOXELS, FMRI_TOKENS, CENTERS = 96, 40, 100, 8, 16
HEADS = {"llm_heads": 4, "clip_heads": 4, "upm_heads": 4}
OFFICIAL = ("image", "video", "audio", "point", "rgbd", "rgbn", "fmri", "imu")
OURS = {"rgbd": "depth", "rgbn": "normal"}
TEXT = [
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "### Human: Provide a one-sentence caption for the provided image. What is this? Describe the scene.",
    "### Assistant: a red circle on the left, a blue square at the top, two yellow triangles.",
]


def official_shapes(vocab: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes as the layout file lists them, at the sizes above."""
    s: dict[str, tuple[int, ...]] = {
        "tok_embeddings.weight": (vocab, D),
        "norm.weight": (D,),
        "output.weight": (vocab, D),
    }
    for i in range(LAYERS):
        for n in ("wq", "wk", "wv", "wo"):
            s[f"layers.{i}.attention.{n}.weight"] = (D, D)
        s |= {
            f"layers.{i}.feed_forward.w1.weight": (FFN, D),
            f"layers.{i}.feed_forward.w3.weight": (FFN, D),
            f"layers.{i}.feed_forward.w2.weight": (D, FFN),
            f"layers.{i}.attention_norm.weight": (D,),
            f"layers.{i}.ffn_norm.weight": (D,),
        }
    v = "clip.visual."
    s |= {
        v + "conv1.weight": (W, 3, PATCH, PATCH),
        v + "class_embedding": (W,),
        v + "positional_embedding": (GRID * GRID + 1, W),
        v + "proj": (W, 32),
    }
    for n in ("ln_pre", "ln_post"):
        s |= {f"{v}{n}.weight": (W,), f"{v}{n}.bias": (W,)}
    for j in range(CLIP_BLOCKS):
        p = f"{v}transformer.resblocks.{j}."
        s |= {
            p + "attn.in_proj_weight": (3 * W, W),
            p + "attn.in_proj_bias": (3 * W,),
            p + "attn.out_proj.weight": (W, W),
            p + "attn.out_proj.bias": (W,),
            p + "mlp.c_fc.weight": (4 * W, W),
            p + "mlp.c_fc.bias": (4 * W,),
            p + "mlp.c_proj.weight": (W, 4 * W),
            p + "mlp.c_proj.bias": (W,),
        }
        for n in ("ln_1", "ln_2"):
            s |= {f"{p}{n}.weight": (W,), f"{p}{n}.bias": (W,)}
    # A piece of the text tower, which OneLLM never uses.
    s |= {"clip.token_embedding.weight": (50, 32), "clip.logit_scale": ()}
    for e in range(E):
        for layer in range(L_U):
            p = f"resample_layers.{e}.{layer}."
            for n in ("wq", "wk", "wv", "wo"):
                s[f"{p}attention.{n}.weight"] = (W, W)
            s |= {
                p + "feed_forward.w1.weight": (UPM_HIDDEN, W),
                p + "feed_forward.w3.weight": (UPM_HIDDEN, W),
                p + "feed_forward.w2.weight": (W, UPM_HIDDEN),
                p + "attention_norm.weight": (W,),
                p + "ffn_norm.weight": (W,),
            }
    for m in OFFICIAL:
        s |= {
            f"clip_proj1.{m}.0.weight": (W, W),
            f"clip_proj1.{m}.0.bias": (W,),
            f"clip_proj1.{m}.1.weight": (W,),
            f"clip_proj1.{m}.1.bias": (W,),
            f"clip_proj2.{m}.0.weight": (D, W),
            f"clip_proj2.{m}.0.bias": (D,),
            f"clip_proj2.{m}.1.weight": (D,),
            f"clip_proj2.{m}.1.bias": (D,),
            f"resample_tokens.{m}": (1, Q, W),
            f"routers.{m}.fc1.weight": (4 * W, W),
            f"routers.{m}.fc1.bias": (4 * W,),
            f"routers.{m}.fc2.weight": (E, 4 * W),
            f"routers.{m}.fc2.bias": (E,),
            f"start_tag.{m}": (1, 1, D),
            f"end_tag.{m}": (1, 1, D),
        }
    audio_patches = ((128 - 16) // 10 + 1) * ((AUDIO_FRAMES - 16) // 10 + 1)
    s |= {
        "conv1.audio.weight": (W, 1, 16, 16),
        "conv1.audio.bias": (W,),
        "positional_embedding.audio": (audio_patches + 1, W),
        "conv1.point.conv1.weight": (W, 6, 1, 1),
        "conv1.point.conv1.bias": (W,),
        "positional_embedding.point": (CENTERS + 1, W),
        "conv1.imu.weight": (W, 6, 10),
        "positional_embedding.imu": (IMU_SAMPLES - 10 + 2, W),
        "conv1.fmri.weight": (W * FMRI_TOKENS, VOXELS),
        "conv1.fmri.bias": (W * FMRI_TOKENS,),
        "positional_embedding.fmri": (FMRI_TOKENS + 1, W),
    }
    return s


def random_tensor(key: str, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Values that keep activations O(1): norms near one, matrices scaled by fan-in."""
    if key.endswith(("norm.weight", "ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", ".1.weight")):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if len(shape) >= 2 and "embedding" not in key and "tokens" not in key and "tag" not in key:
        fan_in = int(torch.tensor(shape[1:]).prod())
        return torch.randn(shape, generator=g) / fan_in**0.5
    return 0.5 * torch.randn(shape, generator=g)


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory) -> Path:
    import sentencepiece

    root = tmp_path_factory.mktemp("sp")
    (root / "text.txt").write_text("\n".join(TEXT * 3))
    sentencepiece.SentencePieceTrainer.train(
        input=str(root / "text.txt"),
        model_prefix=str(root / "tokenizer"),
        vocab_size=320,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return root / "tokenizer.model"


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    state = {f"llma.{k}": random_tensor(k, shape, g) for k, shape in official_shapes(320).items()}
    path = tmp_path_factory.mktemp("ckpt") / "consolidated.00-of-01.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def converted(official, sentencepiece_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "onellm-small"
    report = convert_official(official[0], out, sentencepiece_model, progress=False, **HEADS)
    return out, report


def test_layout_sizes_and_files(converted):
    out, report = converted
    assert report.modalities == {m: OURS.get(m, m) for m in OFFICIAL}
    assert sorted(report.ignored) == ["clip.logit_scale", "clip.token_embedding.weight", "clip.visual.proj"]
    assert not report.unmapped and not report.missing and not report.filled
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "config.json",
        "onellm.safetensors",
        "processor_config.json",
        "llm/model.safetensors",
        "llm/config.json",
        "llm/tokenizer.model",
    } <= files
    assert not [f for f in files if f.endswith(".tmp")]
    config = json.loads((out / "config.json").read_text())
    assert (config["encoder"]["width"], config["encoder"]["layers"], config["encoder"]["image_size"]) == (W, 2, 56)
    upm = config["upm"]
    assert (upm["num_experts"], upm["layers_per_expert"], upm["num_queries"], upm["heads"]) == (E, L_U, Q, 4)
    opts = config["modalities"]
    assert opts["audio"]["frames"] == AUDIO_FRAMES and opts["imu"]["samples"] == IMU_SAMPLES
    assert (opts["fmri"]["voxels"], opts["fmri"]["tokens"]) == (VOXELS, FMRI_TOKENS)
    assert opts["point"]["centers"] == CENTERS and tuple(opts["point"]["sample_columns"]) == (3, 6)
    # The published preprocessing travels with the weights, in both files.
    processor = json.loads((out / "processor_config.json").read_text())["preprocessing"]
    for saved in (opts, processor):
        assert (saved["video"]["frames"], saved["video"]["crops"], saved["video"]["resize"]) == (15, 3, "bilinear")
        assert (saved["imu"]["normalize"], saved["imu"]["resample_padding"]) == (False, "zeros")
    llm = json.loads((out / "llm" / "config.json").read_text())
    assert (llm["hidden_size"], llm["num_hidden_layers"], llm["num_attention_heads"], llm["vocab_size"]) == (
        D,
        2,
        4,
        320,
    )


def test_round_trip_is_bit_identical(official, converted):
    model = OneLLM.from_pretrained(converted[0])
    back = to_official(model)
    expected = {
        k: v
        for k, v in official[1].items()
        if not (k.startswith("llma.clip.") and not k.startswith("llma.clip.visual.")) and k != "llma.clip.visual.proj"
    }
    assert set(back) == set(expected)
    different = [k for k in expected if not torch.equal(back[k], expected[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("modality", OFFICIAL)
def test_logits_match_the_official_math(official, converted, sentencepiece_model, modality):
    import sentencepiece

    model = OneLLM.from_pretrained(converted[0]).eval()
    ours = OURS.get(modality, modality)
    tokenizer = model.tokenizers[ours]
    x = tokenizer.example_input(1, torch.Generator().manual_seed(1))
    question = "What is this?"
    batch = model.processor([model.processor.prompt(question)])
    text = model.processor.prompt(question).replace("<modality>", "")
    text_ids = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model)).encode(text)
    # The processor lays out [BOS, start, Q, end, text] with sentencepiece's own ids.
    assert batch["input_ids"][~batch["modality_mask"]].tolist() == [1] + text_ids
    assert batch["modality_mask"][0, 1 : Q + 3].all() and batch["modality_mask"].sum() == Q + 2
    with torch.no_grad():
        got = model(**batch, modality=ours, inputs=x).logits
        want = reference.official_logits(
            official[1], modality, x, text_ids, llm_heads=4, clip_heads=4, upm_heads=4, centers=CENTERS
        )
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4
    # The text logits depend on the modality input well beyond that tolerance.
    other = reference.official_logits(
        official[1],
        modality,
        tokenizer.example_input(1, torch.Generator().manual_seed(2)),
        text_ids,
        llm_heads=4,
        clip_heads=4,
        upm_heads=4,
        centers=CENTERS,
    )
    assert (other - want)[0, Q + 3 :].abs().max() > 1e-2


def test_missing_tensors_refused_unless_partial(official, sentencepiece_model, tmp_path):
    state = dict(official[1])
    del state["llma.clip_proj2.audio.0.bias"]
    state["llma.some.new.thing"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(BadInputError, match="partial model"):
        convert_official(path, tmp_path / "refused", sentencepiece_model, progress=False, **HEADS)
    assert not (tmp_path / "refused" / "onellm.safetensors").exists()
    report = convert_official(
        path, tmp_path / "partial", sentencepiece_model, allow_partial=True, progress=False, **HEADS
    )
    assert report.missing == ["clip_proj2.audio.0.bias"] and report.unmapped == ["some.new.thing"]
    assert report.filled == ["upm.out_proj.audio.0.bias"]
    model = OneLLM.from_pretrained(tmp_path / "partial")
    assert torch.equal(model.upm.out_proj["audio"][0].bias, torch.zeros(D))


@pytest.mark.parametrize("given", [{}, {"llm_heads": 4}, {"llm_heads": 4, "clip_heads": 4}])
def test_head_counts_required_at_widths_other_than_the_release(official, sentencepiece_model, tmp_path, given):
    missing = next(k for k in ("llm_heads", "clip_heads", "upm_heads") if k not in given)
    with pytest.raises(BadInputError, match="--" + missing.replace("_", "-")):
        convert_official(official[0], tmp_path / "x", sentencepiece_model, progress=False, **given)
    assert not (tmp_path / "x").exists()


def test_bad_files_are_named(sentencepiece_model, tmp_path):
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match="bogus.pth"):
        convert_official(bogus, tmp_path / "x", sentencepiece_model, progress=False)


def test_cli_converts_safetensors_to_bfloat16(official, sentencepiece_model, tmp_path, capsys):
    import argparse

    from safetensors.torch import save_file

    from onellm.convert.cli import add_convert_parser

    path = tmp_path / "official.safetensors"
    save_file({k: v.contiguous() for k, v in official[1].items()}, path)
    parser = argparse.ArgumentParser()
    add_convert_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "convert-official",
            str(path),
            "--llama-tokenizer",
            str(sentencepiece_model),
            "--out",
            str(tmp_path / "bf16"),
            "--dtype",
            "bfloat16",
            "--llm-heads",
            "4",
            "--clip-heads",
            "4",
            "--upm-heads",
            "4",
        ]
    )
    assert args.func(args) == 0
    assert "depth" in capsys.readouterr().out
    model = OneLLM.from_pretrained(tmp_path / "bf16")
    wq = official[1]["llma.resample_layers.1.0.attention.wq.weight"]
    assert torch.equal(model.upm.experts[1][0].attention["wq"].weight, wq.to(torch.bfloat16).float())
    assert json.loads((tmp_path / "bf16" / "llm" / "config.json").read_text())["dtype"] == "bfloat16"


def test_clip_directory_stands_in_for_missing_encoder_weights(official, sentencepiece_model, tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(3)
    clip = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=W,
            intermediate_size=4 * W,
            num_hidden_layers=CLIP_BLOCKS,
            num_attention_heads=4,
            image_size=GRID * PATCH,
            patch_size=PATCH,
            hidden_act="quick_gelu",
        )
    )
    clip.save_pretrained(tmp_path / "clip")
    path = tmp_path / "no-clip.pth"
    torch.save({k: v for k, v in official[1].items() if not k.startswith("llma.clip.")}, path)
    report = convert_official(
        path, tmp_path / "out", sentencepiece_model, clip=tmp_path / "clip", progress=False, **HEADS
    )
    assert "clip.visual.transformer.resblocks.1.attn.in_proj_weight" in report.from_clip and not report.filled
    model = OneLLM.from_pretrained(tmp_path / "out")
    got, want = model.encoder.vit.state_dict(), clip.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
