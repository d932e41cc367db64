"""Several inputs in one prompt: named placeholders, mixed batches (any inputs per sample,
text-only samples too) that give each sample the logits it gets alone, generation with two
inputs on the KV cache, a plugin modality beside a built-in one, and multi-input manifests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onellm import ModalitySpec, ModalityTokenizer, OneLLM, OneLLMConfig, TokenGrid, register_modality
from onellm.data.dataset import ManifestDataset
from onellm.data.manifest import read_manifest, write_manifest
from onellm.eval.items import EvalItem, only_inputs
from onellm.modality import learned_pos_embed
from onellm.model.modality_batch import ModalityBatch
from onellm.processor import OneLLMProcessor
from onellm.registry import MODALITIES
from onellm.training.datamodule import TextForSamples


@pytest.fixture
def model() -> OneLLM:
    torch.manual_seed(0)
    return OneLLM(OneLLMConfig.from_preset("tiny")).eval()


def example(model: OneLLM, modality: str, seed: int) -> torch.Tensor:
    return model.tokenizers[modality].example_input(1, torch.Generator().manual_seed(seed))[0]


def test_prompt_with_two_placeholders_round_trips(model: OneLLM, tmp_path: Path) -> None:
    processor = model.processor
    prompt = processor.prompt("What moves, and what sounds?", modalities=["video", "audio"])
    assert prompt.startswith("<video><audio>")
    assert processor.markers(prompt) == ["video", "audio"]
    batch = processor([prompt])
    mask = batch["modality_mask"][0]
    run = processor.num_modality_tokens
    # two runs of Q + 2 positions, back to back after BOS
    assert int(mask.sum()) == 2 * run and mask[1 : 1 + 2 * run].all()
    text = batch["input_ids"][0][~mask].tolist()
    assert processor.tokenizer.decode(text, skip_special_tokens=True) == prompt.replace("<video><audio>", "")

    processor.check_inputs([prompt], [["video", "audio"]])
    with pytest.raises(ValueError, match="<video>, <audio> but its sample's inputs are audio, video"):
        processor.check_inputs([prompt], [["audio", "video"]])
    with pytest.raises(ValueError, match="inputs are video"):
        processor([prompt], modalities=[["video"]])

    processor.save_pretrained(tmp_path / "proc")
    loaded = OneLLMProcessor.from_pretrained(tmp_path / "proc")
    assert loaded.to_dict() == json.loads(json.dumps(processor.to_dict()))  # tuples come back as lists
    again = loaded([prompt, processor.prompt("Hi?", modalities=[])])
    assert torch.equal(again["input_ids"][0], batch["input_ids"][0])
    assert not again["modality_mask"][1].any()  # a text-only prompt has no placeholder


def _sample_text(model: OneLLM, modalities: list[str], question: str) -> str:
    return model.processor.prompt(question, modalities=modalities)


def test_mixed_batch_gives_each_sample_its_own_logits(model: OneLLM) -> None:
    """image only, video + audio, text only and audio + image in one batch: every sample's
    logits equal those of the sample run alone."""
    samples = [
        [("image", example(model, "image", 1))],
        [("video", example(model, "video", 2)), ("audio", example(model, "audio", 3))],
        [],
        [("audio", example(model, "audio", 4)), ("image", example(model, "image", 5))],
    ]
    prompts = [
        _sample_text(model, [m for m, _ in s], q)
        for s, q in zip(samples, ["What is it?", "What moves and what sounds?", "Hello there, who are you?", "Both?"])
    ]
    answers = ["a red circle", "a square moving left while a low tone pulses", "an assistant", "yes"]
    batch = model.processor(prompts, answers=answers, modalities=[[m for m, _ in s] for s in samples])
    inputs = ModalityBatch.of_samples(samples)
    assert sorted(inputs.tensors) == ["audio", "image", "video"] and inputs.tensors["audio"].shape[0] == 2
    with torch.no_grad():
        together = model(
            batch["input_ids"], batch["attention_mask"], batch["modality_mask"], inputs=inputs, labels=batch["labels"]
        )
        for i, sample in enumerate(samples):
            alone_batch = model.processor([prompts[i]], answers=[answers[i]])
            alone = model(
                alone_batch["input_ids"],
                alone_batch["attention_mask"],
                alone_batch["modality_mask"],
                inputs=ModalityBatch.of_samples([sample]),
            )
            n = int(alone_batch["attention_mask"].sum())
            torch.testing.assert_close(together.logits[i, :n], alone.logits[0, :n], atol=2e-5, rtol=1e-4)
    assert sorted(together.routing) == ["audio", "image", "video"]
    assert together.routing["audio"].shape[0] == 2


def test_single_input_call_is_unchanged(model: OneLLM) -> None:
    x = model.tokenizers["image"].example_input(2, torch.Generator().manual_seed(0))
    batch = model.processor([model.processor.prompt("What is it?")] * 2)
    with torch.no_grad():
        by_tensor = model(**batch, modality="image", inputs=x).logits
        by_batch = model(**batch, inputs=ModalityBatch.single("image", x)).logits
    assert torch.equal(by_tensor, by_batch)
    one_placeholder = model.processor([model.processor.prompt("?")])
    with pytest.raises(ValueError, match="modality positions for 2 inputs"):
        model(**one_placeholder, inputs=ModalityBatch({"image": x}, [("image", 0), ("image", 1)]))


def test_generation_with_two_inputs_uses_the_kv_cache(model: OneLLM) -> None:
    video, audio = example(model, "video", 7)[None], example(model, "audio", 8)[None]
    lengths: list[int] = []

    def record(module, args, kwargs) -> None:
        given = kwargs.get("inputs_embeds")
        lengths.append((kwargs["input_ids"] if given is None else given).shape[1])

    hook = model.llm.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        cached = model.answer({"video": video, "audio": audio}, "What moves?", max_new_tokens=6, min_new_tokens=6)
    finally:
        hook.remove()
    prompt_length = len(lengths) and lengths[0]
    assert prompt_length > 2 * model.processor.num_modality_tokens
    assert lengths[1:] == [1] * (len(lengths) - 1) and len(lengths) == 6  # one new token per step after the prompt
    uncached = model.answer(
        {"video": video, "audio": audio}, "What moves?", max_new_tokens=6, min_new_tokens=6, use_cache=False
    )
    assert cached == uncached


@dataclass
class HeatOptions:
    size: int = 8


class HeatTokenizer(ModalityTokenizer):
    """A plugin's modality, written against the public base class only."""

    Options = HeatOptions

    def __init__(self, encoder, options) -> None:
        super().__init__(encoder, options)
        self.input_shape = (1, options.size, options.size)
        self.num_patches = (options.size // 2) ** 2
        self.conv = nn.Conv2d(1, encoder.width, 2, stride=2)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        return TokenGrid(self.conv(x).flatten(2).transpose(1, 2).unsqueeze(1), self.pos_embed)


def _load_heat(paths, ctx, train=False, meta=None) -> torch.Tensor:
    return torch.from_numpy(np.load(paths[0]).astype(np.float32))[None]


@pytest.fixture
def heat() -> str:
    register_modality(ModalitySpec(name="heat", tokenizer=HeatTokenizer, load=_load_heat, extensions=(".heat.npy",)))
    yield "heat"
    MODALITIES.unregister("heat")


def test_plugin_modality_beside_a_built_in_one(model: OneLLM, heat: str, tmp_path: Path) -> None:
    model.add_modality(heat)
    image, hot = example(model, "image", 1), example(model, heat, 2)
    mixed = [[("image", image), (heat, hot)], [(heat, hot)]]
    prompts = [_sample_text(model, [m for m, _ in s], "Where is it warm?") for s in mixed]
    assert prompts[0].startswith("<image><heat>")
    batch = model.processor(prompts, modalities=[[m for m, _ in s] for s in mixed], padding_side="right")
    with torch.no_grad():
        both = model(**batch, inputs=ModalityBatch.of_samples(mixed)).logits
        alone = model(**model.processor(prompts[:1]), inputs=ModalityBatch.of_samples(mixed[:1])).logits
    n = int(batch["attention_mask"][0].sum())
    torch.testing.assert_close(both[0, :n], alone[0, :n], atol=2e-5, rtol=1e-4)
    text = model.answer({"image": image[None], heat: hot[None]}, max_new_tokens=3)
    assert len(text) == 1

    # and from a manifest, through the training collate
    np.save(tmp_path / "a.heat.npy", np.ones((8, 8), np.float32))
    np.save(tmp_path / "img.npy", image.numpy())
    rows = [
        {
            "id": "s1",
            "inputs": [{"modality": "image", "files": ["img.npy"]}, {"modality": heat, "files": ["a.heat.npy"]}],
            "caption": "warm on the left",
        }
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = read_manifest(tmp_path / "m.jsonl")
    assert samples[0].modality == "image+heat"
    dataset = ManifestDataset(samples, dict(model.tokenizers), train=True)
    sample, tensors = dataset[0]
    collated = TextForSamples(model.processor, "caption")([(sample, tensors, 0.0)])
    assert collated["modality"] == "image+heat" and collated["inputs"].order == [("image", 0), (heat, 0)]
    model.train()
    out = model(
        **{k: collated[k] for k in ("input_ids", "attention_mask", "modality_mask", "labels")},
        inputs=collated["inputs"],
        loss_only=True,
    )
    out.loss.backward()
    assert model.tokenizers[heat].conv.weight.grad.abs().sum() > 0


def test_multi_input_manifest_rows(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    row = {
        "id": "av1",
        "inputs": [
            {"modality": "video", "files": ["clips/a.mp4"]},
            {"modality": "audio", "files": ["clips/a.mp4"], "meta": {"channel": 0}},
        ],
        "caption": "a dog barks",
        "split": "test",
        "meta": {"source": "x"},
    }
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    sample = read_manifest(tmp_path / "m.jsonl")[0]
    assert sample.modality == "video+audio" and sample.files == ["clips/a.mp4"]
    parts = sample.input_list()
    assert [p.modality for p in parts] == ["video", "audio"]
    assert parts[1].paths == [tmp_path / "clips/a.mp4"] and parts[1].meta == {"source": "x", "channel": 0}

    # written from another folder, every input's files are rewritten to reach the same file
    write_manifest(tmp_path / "sub" / "copy.jsonl", [sample])
    copied = json.loads((tmp_path / "sub" / "copy.jsonl").read_text())
    assert "files" not in copied and "modality" not in copied
    assert [i["files"] for i in copied["inputs"]] == [["../clips/a.mp4"], ["../clips/a.mp4"]]
    assert (
        read_manifest(tmp_path / "sub" / "copy.jsonl")[0].input_list()[0].paths[0].resolve()
        == (tmp_path / "clips/a.mp4").resolve()
    )

    for bad, message in (
        ({**row, "files": ["x.mp4"]}, "inside each of 'inputs'"),
        ({**row, "modality": "audio+video"}, "does not match the inputs"),
        ({**row, "inputs": [{"modality": "video"}]}, r"inputs\[0\] needs"),
        ({**row, "inputs": []}, "non-empty list"),
    ):
        (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=message):
            read_manifest(tmp_path / "bad.jsonl")

    item = EvalItem.of(sample)
    video_only = only_inputs(item, ["video"])
    assert video_only.modality == "video" and not video_only.inputs and video_only.files == ["clips/a.mp4"]
    assert only_inputs(item, ["audio"]).meta["channel"] == 0


def test_audio_visual_world_converts_packs_checks_and_loads(model: OneLLM, tmp_path: Path) -> None:
    """The synthetic scene's MP4s carry both streams; a folder of them converts to video+audio
    samples; shards and `data check` keep both inputs."""
    from onellm.data.check import check_manifests
    from onellm.data.converters import convert
    from onellm.data.shards import iter_shard_samples, pack_shards
    from onellm.data.synth.world import synthesize_world

    manifests = synthesize_world(tmp_path / "w", per_modality=3, modalities=["video", "audio"], progress=False)
    assert set(manifests) == {"video", "audio", "audiovisual"}
    samples = read_manifest(manifests["audiovisual"])
    assert {s.modality for s in samples} == {"video+audio"}
    first = samples[0]
    seen, heard = first.caption.split(" while ")  # what moves, and what sounds
    assert first.meta["colour"] in seen and first.meta["pitch"] in heard
    video, audio = ManifestDataset(samples, dict(model.tokenizers))[0][1]
    assert tuple(video.shape) == model.tokenizers["video"].input_shape
    assert tuple(audio.shape) == model.tokenizers["audio"].input_shape and audio.std() > 0.1  # a tone, not silence

    out = tmp_path / "folder.jsonl"
    convert("folder", tmp_path / "w" / "audiovisual", out, modality="video+audio")
    converted = read_manifest(out)
    assert len(converted) == 3 and all(s.input_modalities() == ["video", "audio"] for s in converted)
    assert converted[0].input_list()[1].paths == converted[0].paths()

    packed = pack_shards(manifests["audiovisual"], tmp_path / "shards")
    streamed = list(iter_shard_samples(sorted((tmp_path / "shards").glob("*.tar"))))
    assert [s.input_modalities() for s, _ in streamed] == [["video", "audio"]] * 3
    assert ManifestDataset(read_manifest(packed), dict(model.tokenizers))[0][1][1].shape == audio.shape

    report = check_manifests([manifests["audiovisual"]], model="tiny")
    assert report.checked == 3 and not report.bad


def test_qa_accuracy_per_question_type() -> None:
    from onellm.eval.runner import score
    from onellm.eval.tasks import QA, EvalTask

    def item(n: int, answer: str, kind) -> EvalItem:
        return EvalItem(f"s#{n}", "video+audio", ["a.mp4"], qa=[{"question": "?", "answer": answer, "type": kind}])

    items = [
        item(0, "red", "visual"),
        item(1, "circle", "visual"),
        item(2, "low", "audio"),
        item(3, "two", ["Audio", "Counting"]),
        item(4, "yes", ["Visual", "Existential"]),
    ]
    task = EvalTask("t", "video+audio", QA, lambda root: items)
    metrics = score(task, items, {"s#0": "red", "s#1": "square", "s#2": "low", "s#3": "three", "s#4": "yes"})
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["accuracy[visual]"] == 0.5 and metrics["accuracy[audio]"] == 1.0
    assert metrics["accuracy[Audio]"] == 0.0 and metrics["accuracy[Visual]"] == 1.0


def test_a_video_without_sound_is_one_bad_sample(model: OneLLM, tmp_path: Path) -> None:
    """A video+audio sample whose file has no audio stream is skipped and counted by the
    training collate, with the file and the problem, and the batch goes on without it."""
    from onellm.data.dataset import BadSample
    from onellm.tokenizers.video import write_mp4

    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)]
    write_mp4(tmp_path / "silent.mp4", frames, 4)
    write_mp4(tmp_path / "sound.mp4", frames, 4, sound=(np.sin(np.arange(24000) / 10).astype(np.float32) * 0.5, 16000))
    rows = [
        {
            "id": name,
            "inputs": [{"modality": m, "files": [f"{name}.mp4"]} for m in ("video", "audio")],
            "caption": "a clip",
        }
        for name in ("silent", "sound")
    ]
    (tmp_path / "av.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = ManifestDataset(read_manifest(tmp_path / "av.jsonl"), dict(model.tokenizers), train=True)
    bad = dataset[0]
    assert isinstance(bad, BadSample) and bad.problem == "no audio stream"
    assert str(tmp_path / "silent.mp4") in bad.reason and "audio" in bad.reason
    batch = TextForSamples(model.processor, "caption")([bad, (*dataset[1], 0.0)])
    assert batch["ids"] == ["sound"] and batch["bad"] == [bad] and len(batch["inputs"]) == 2


@pytest.mark.slow
def test_eval_asks_with_both_inputs_or_the_ones_kept(tmp_path: Path, monkeypatch, capsys) -> None:
    """`onellm eval --manifest` on video+audio samples asks with both inputs; `--inputs video`
    asks the same items with the video alone, reported as <task>@video."""
    from onellm.cli import main
    from onellm.data.synth.world import synthesize_world

    manifest = synthesize_world(
        tmp_path / "w", per_modality=2, modalities=["video", "audio"], split_fractions=(0, 0, 1), progress=False
    )["audiovisual"]
    asked: list[list[str]] = []
    real = OneLLM.generate

    def spy(self, *args, inputs=None, **kwargs):
        asked.append([m for m, _ in inputs.order])
        return real(self, *args, inputs=inputs, **kwargs)

    monkeypatch.setattr(OneLLM, "generate", spy)
    for extra, folder in (([], "both"), (["--inputs", "video"], "video")):
        argv = [
            "eval",
            "--model",
            "tiny",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / folder),
            "--max-new-tokens",
            "2",
            "--batch-size",
            "8",
            *extra,
        ]
        assert main(argv) == 0, capsys.readouterr().err
    suffix = "@video"
    both, video = asked[: len(asked) // 2], asked[len(asked) // 2 :]
    assert all(order == ["video", "audio"] * (len(order) // 2) for order in both)
    assert all(set(order) == {"video"} for order in video)
    results = json.loads((tmp_path / "video" / "results.json").read_text())
    names = {r["task"] for r in results["tasks"]}
    assert names == {f"manifest-caption-audiovisual{suffix}", f"manifest-qa-audiovisual{suffix}"}
    qa = json.loads((tmp_path / "video" / f"manifest-qa-audiovisual{suffix}" / "results.json").read_text())
    assert qa["total"] == 8 and set(qa["metrics"]) >= {"accuracy[visual]", "accuracy[audio]"}
