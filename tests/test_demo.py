"""`onellm demo`: the gradio page served on localhost, driven through gradio_client with one
real file per built-in modality."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

gr = pytest.importorskip("gradio")
client_lib = pytest.importorskip("gradio_client")

from media_files import bar_clip  # noqa: E402

from onellm import OneLLM  # noqa: E402
from onellm.demo.app import build_app  # noqa: E402
from onellm.demo.chat import modality_choices, stream_answer  # noqa: E402
from onellm.errors import BadInputError  # noqa: E402
from onellm.inputs import load_input  # noqa: E402
from onellm.model.llm import decoding  # noqa: E402
from onellm.registry import caption_prompt, get_modality  # noqa: E402

SETTINGS = (12, 0.0, 1.0)  # max new tokens, temperature, top-p


def _rgb(path: Path, rng: np.random.Generator, size=(48, 64)) -> Path:
    from PIL import Image

    img = np.zeros((*size, 3), np.uint8)
    img[:, : size[1] // 2] = rng.integers(0, 255, 3)
    img[size[0] // 3 :, size[1] // 3 :] = rng.integers(0, 255, 3)
    Image.fromarray(img).save(path)
    return path


def _image(d: Path, rng) -> list[Path]:
    return [_rgb(d / "photo.png", rng)]


def _video(d: Path, rng, sound: bool = False) -> list[Path]:
    """Two seconds of a bar moving right; with `sound`, a 440 Hz tone in an AAC stream beside it."""
    return [bar_clip(d / "clip.mp4", sound=sound)]


def _audio(d: Path, rng) -> list[Path]:
    import soundfile

    t = np.arange(16000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    soundfile.write(d / "tone.wav", wave.astype(np.float32), 16000)
    return [d / "tone.wav"]


def _point(d: Path, rng) -> list[Path]:
    import open3d

    cloud = open3d.geometry.PointCloud()
    xyz = rng.standard_normal((2000, 3))
    cloud.points = open3d.utility.Vector3dVector(xyz / np.linalg.norm(xyz, axis=1, keepdims=True))
    cloud.colors = open3d.utility.Vector3dVector(rng.random((2000, 3)))
    open3d.io.write_point_cloud(str(d / "sphere.ply"), cloud)
    return [d / "sphere.ply"]


def _depth(d: Path, rng) -> list[Path]:
    from PIL import Image

    millimetres = np.tile(np.linspace(500, 4000, 64, dtype=np.uint16), (48, 1))
    Image.fromarray(millimetres).save(d / "room.depth.png")  # 16-bit greyscale
    return [d / "room.depth.png", _rgb(d / "room.png", rng)]


def _normal(d: Path, rng) -> list[Path]:
    from PIL import Image

    normals = np.zeros((48, 64, 3), np.float32)
    normals[..., 2] = 1
    normals[:, 32:, 0] = 0.7  # a tilted half
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    Image.fromarray(np.round((normals + 1) / 2 * 255).astype(np.uint8)).save(d / "room.normal.png")
    return [d / "room.normal.png", _rgb(d / "room.png", rng)]


def _imu(d: Path, rng) -> list[Path]:
    t = np.arange(500) / 200
    rows = np.column_stack([t, np.sin(t[:, None] * np.arange(1, 7)) + 0.05 * rng.standard_normal((500, 6))])
    np.savetxt(d / "walk.csv", rows, delimiter=",", header="timestamp,ax,ay,az,gx,gy,gz", comments="")
    return [d / "walk.csv"]


def _fmri(d: Path, rng, voxels: int) -> list[Path]:
    np.save(d / "scan.npy", rng.standard_normal(voxels).astype(np.float32))
    return [d / "scan.npy"]


WRITERS: dict[str, Callable[..., list[Path]]] = {
    "image": _image,
    "video": _video,
    "audio": _audio,
    "point": _point,
    "depth": _depth,
    "normal": _normal,
    "imu": _imu,
    "fmri": _fmri,
}


def _write(modality: str, d: Path, model: OneLLM) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if modality == "fmri":
        return _fmri(d, rng, model.tokenizers["fmri"].input_shape[0])
    return WRITERS[modality](d, rng)


def _talkative(model: OneLLM) -> OneLLM:
    """The tiny LM is random and often says end-of-text first; these tests want text to come
    through, so end-of-text gets logit 0, below the best of the other 258 bytes."""
    with torch.no_grad():
        model.llm.get_output_embeddings().weight[model.processor.tokenizer.eos_token_id] = 0
    return model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    torch.manual_seed(0)
    model = _talkative(OneLLM.from_pretrained("tiny"))
    demo = build_app(model)
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield model, client_lib.Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def _handle(paths: list[Path]) -> tuple:
    return client_lib.handle_file(str(paths[0])), client_lib.handle_file(str(paths[1])) if len(paths) > 1 else None


def _last_answer(history: list[dict]) -> str:
    assert history[-1]["role"] == "assistant"
    content = history[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_every_built_in_modality_is_offered(served):
    model, _ = served
    assert set(WRITERS) <= set(modality_choices(model))


@pytest.mark.parametrize("modality", list(WRITERS))
def test_upload_detects_modality_and_caption_matches_the_model(served, tmp_path, modality):
    model, client = served
    paths = _write(modality, tmp_path, model)
    file, companion = _handle(paths)
    spec = get_modality(modality)

    # Uploading guesses the modality from the extension (a bare .npy only by its shape, which
    # a voxel vector shares with no other input here), shows the companion slot only when the
    # modality has companions, and renders a preview.
    guessed, companion_slot, *previews, chat, router = client.predict(file, "image", api_name="/upload")
    assert guessed == modality
    assert companion_slot["visible"] == bool(spec.companions)
    assert chat == [] and router is None
    made = spec.preview(paths)
    shown = [p for p in previews if p["visible"]]
    assert len(shown) == (len(made) if isinstance(made, list) else 1)  # each item in its own viewer
    assert all(p["value"] is not None for p in shown)

    history, router = client.predict(file, companion, modality, [], *SETTINGS, api_name="/caption")
    assert [m["role"] for m in history] == ["user", "assistant"]
    x = load_input(paths, modality, model.tokenizers[modality]).unsqueeze(0)
    expected = model.caption(modality, x, max_new_tokens=SETTINGS[0])[0]
    assert _last_answer(history) == expected != ""
    assert spec.caption_prompt() in str(history[0]["content"])
    weights = [row[1] for row in router["data"]]
    assert len(weights) == model.config.upm.num_experts
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)


def test_a_video_with_its_sound_is_two_inputs_answered_as_the_model_does(served, tmp_path):
    model, client = served
    path = _video(tmp_path, np.random.default_rng(0), sound=True)[0]
    file = client_lib.handle_file(str(path))
    inputs = {m: load_input([path], m, model.tokenizers[m]).unsqueeze(0) for m in ("video", "audio")}

    history, router = client.predict(file, None, "video", [], *SETTINGS, True, api_name="/caption")
    assert caption_prompt(["video", "audio"]) in str(history[0]["content"])
    assert _last_answer(history) == model.answer(inputs, max_new_tokens=SETTINGS[0])[0] != ""
    assert sum(row[1] for row in router["data"]) == pytest.approx(1.0, abs=1e-4)  # over both inputs' tokens

    question = "What do you hear?"
    history, _ = client.predict(file, None, "video", question, [], *SETTINGS, True, api_name="/chat")
    assert _last_answer(history) == model.answer(inputs, question, max_new_tokens=SETTINGS[0])[0] != ""
    # Left out, the box is unticked: the pictures alone, as before.
    history, _ = client.predict(file, None, "video", [], *SETTINGS, api_name="/caption")
    assert _last_answer(history) == model.caption("video", inputs["video"], max_new_tokens=SETTINGS[0])[0]


def test_a_silent_video_asked_with_its_sound_says_what_to_do(served, tmp_path):
    _, client = served
    file = client_lib.handle_file(str(_video(tmp_path, np.random.default_rng(0))[0]))
    with pytest.raises(client_lib.exceptions.AppError) as caught:
        client.predict(file, None, "video", [], *SETTINGS, True, api_name="/caption")
    assert str(caught.value) == (
        'clip.mp4: audio: no audio stream; untick "use the file\'s audio too" to ask about the upload alone'
    )


def test_each_input_is_previewed(tmp_path):
    from onellm.demo.app import PREVIEW_KINDS, _previews

    path = str(_video(tmp_path, np.random.default_rng(0), sound=True)[0])
    alone = {kind for kind, shown in zip(PREVIEW_KINDS, _previews("video", path, None)) if shown["visible"]}
    both = {kind for kind, shown in zip(PREVIEW_KINDS, _previews("video", path, None, sound=True)) if shown["visible"]}
    assert alone == {"video"} and both == {"video", "plot"}  # the player, and the soundtrack's spectrogram


def test_bad_file_shows_the_loader_error_and_the_server_keeps_serving(served, tmp_path):
    model, client = served
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(client_lib.exceptions.AppError) as caught:
        client.predict(client_lib.handle_file(str(broken)), None, "image", [], *SETTINGS, api_name="/caption")
    with pytest.raises(BadInputError) as expected:
        load_input([broken], "image", model.tokenizers["image"])
    # The loader's own message reaches the page, naming the upload by its own name: the
    # server's temporary folder is none of the user's business.
    assert str(caught.value) == str(expected.value).replace(str(broken), "broken.png")

    file, _ = _handle(_write("image", tmp_path / "good", model))
    history, _ = client.predict(file, None, "image", [], *SETTINGS, api_name="/caption")
    assert _last_answer(history) != ""


def test_chat_carries_earlier_turns(served, tmp_path):
    model, client = served
    file, _ = _handle(_write("image", tmp_path, model))
    history, _ = client.predict(file, None, "image", [], *SETTINGS, api_name="/caption")
    history, _ = client.predict(file, None, "image", "What colour is it?", history, *SETTINGS, api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert "What colour is it?" in str(history[2]["content"])
    assert _last_answer(history) != ""


def test_prompt_with_history_extends_the_single_turn_template(tiny_model):
    processor = tiny_model.processor
    assert processor.prompt("Q2?", []) == processor.prompt("Q2?")
    prompt = processor.prompt("Q2?", [("Q1?", "A1.")])
    assert prompt.index("Q1?") < prompt.index("A1.") < prompt.index("Q2?")
    assert prompt.endswith(processor.prompt("Q2?")[-len("Q2?\n### Assistant:") :])
    ids, mask = processor.encode(prompt)
    assert sum(mask) == processor.num_modality_tokens  # still exactly one modality input


def test_streamed_answer_matches_greedy_caption(tiny_model):
    _talkative(tiny_model)
    x = tiny_model.tokenizers["image"].example_input(1, torch.Generator().manual_seed(0))
    question = get_modality("image").caption_prompt()
    generation = decoding(max_new_tokens=24, temperature=0.0)
    pieces = list(stream_answer(tiny_model, [("image", x[0])], tiny_model.processor.prompt(question), generation))
    expected = tiny_model.caption("image", x, max_new_tokens=24)[0]
    assert len(pieces) > 1 and pieces[-1] == expected != ""
    assert all(b.startswith(a) for a, b in zip(pieces, pieces[1:]))  # grows, never rewrites


def test_cli_binds_locally_without_share_and_limits_uploads(monkeypatch):
    import argparse

    from onellm.demo.cli import add_demo_parser

    parser = argparse.ArgumentParser()
    add_demo_parser(parser.add_subparsers(dest="command"))
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    args = parser.parse_args(["demo", "--model", "tiny", "--max-file-mb", "5", "--dtype", "bfloat16"])
    assert args.func(args) == 0
    assert launched["server_name"] == "127.0.0.1" and launched["share"] is False
    assert launched["max_file_size"] == 5 * 2**20
    with pytest.raises(SystemExit):
        parser.parse_args(["demo"])  # --model is required


def test_streaming_works_in_reduced_precision(tiny_model):
    model = _talkative(tiny_model).to(torch.bfloat16).eval()
    x = model.tokenizers["audio"].example_input(1, torch.Generator().manual_seed(0))
    prompt = model.processor.prompt(get_modality("audio").caption_prompt())
    pieces = list(stream_answer(model, [("audio", x[0])], prompt, GenerationConfig(max_new_tokens=8)))
    assert pieces and pieces[-1] == model.caption("audio", x, max_new_tokens=8)[0] != ""


def test_stop_marker_ends_the_visible_answer():
    from onellm.demo.chat import _visible

    assert _visible("a red ball ##", "onellm") == ("a red ball", False)  # maybe the marker
    assert _visible("a red ball ##", "onellm", complete=True) == ("a red ball ##", False)
    assert _visible("a red ball ### Human: hi", "onellm") == ("a red ball", True)
    assert _visible("C# ", "chat") == ("C#", False)


def test_meta_reaches_the_loader_of_every_upload(tiny_model, tmp_path, monkeypatch):
    """A bare IMU .npy has no timestamps: the page needs `--meta sample_rate=...` to read it."""
    import argparse

    from onellm.demo import app
    from onellm.demo.cli import add_demo_parser

    np.save(tmp_path / "walk.npy", np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32))
    model, file = _talkative(tiny_model).eval(), str(tmp_path / "walk.npy")
    settings = decoding(max_new_tokens=4)
    with pytest.raises(gr.Error, match=r"walk\.npy.*sample rate"):
        list(app._respond(model, file, None, "imu", "Describe the scene.", [], settings))
    answered = list(app._respond(model, file, None, "imu", "Describe the scene.", [], settings, {"sample_rate": 100}))
    assert answered[-1][0][-1]["role"] == "assistant"

    parser = argparse.ArgumentParser()
    add_demo_parser(parser.add_subparsers(dest="command"))
    built = {}
    monkeypatch.setattr(app, "build_app", lambda model, title, meta: built.update(meta=meta) or gr.Blocks())
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: None)
    args = parser.parse_args(["demo", "--model", "tiny", "--meta", "sample_rate=100", "--meta", "start=0.5"])
    assert args.func(args) == 0
    assert built["meta"] == {"sample_rate": 100, "start": 0.5}


def test_caption_button_asks_a_caption_stage_model_nothing(tiny_model, tmp_path, monkeypatch):
    from onellm.demo import app

    prompts = []
    monkeypatch.setattr(
        app, "stream_answer", lambda model, inputs, prompt, settings: prompts.append(prompt) or iter(["ok"])
    )
    path = _rgb(tmp_path / "a.png", np.random.default_rng(0))
    for prompting in ("bare", "template"):
        tiny_model.config.prompting = prompting
        list(app._respond(tiny_model, str(path), None, "image", None, [], decoding()))
    list(app._respond(tiny_model, str(path), None, "image", "Caption it.", [], decoding()))
    assert prompts[0] == "<modality>"
    assert prompts[1] == tiny_model.processor.request(["image"]) != prompts[0]
    assert "Caption it." in prompts[2]  # a question is asked in the template, whatever the model
