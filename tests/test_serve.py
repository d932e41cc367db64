"""`onellm serve`: the server in a subprocess on a free localhost port, asked through the
official `openai` client about real files of every modality (the ECG plugin's too); its
answers must be the model's own (`OneLLM.answer` at temperature 0), and bad requests of
every kind must end as a 4xx OpenAI error with the next request answered."""

from __future__ import annotations

import base64
import os
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # the server in a subprocess

openai = pytest.importorskip("openai")  # the serve extra
pytest.importorskip("fastapi")
import httpx  # noqa: E402  (openai's own HTTP client)
from media_files import bar_clip  # noqa: E402
from test_bad_files import Case, damaged_files, good_files  # noqa: E402  (the damaged-file corpus)

from onellm import OneLLM, register_modality  # noqa: E402
from onellm.inputs import load_input  # noqa: E402
from onellm.model.modality_batch import ModalityBatch  # noqa: E402
from onellm.registry import MODALITIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "ecg_plugin"
KEY = "test-key-0123"
NAME = "tiny-test"
TOKENS = 12  # max_tokens of the comparisons


# the server and the same model in this process -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _printable(model: OneLLM) -> OneLLM:
    """The tiny LM is random: it often says end-of-text first, and its bytes are rarely
    UTF-8. Here it writes printable ASCII (no '#', the template's stop) to the last token:
    every other token's logit is 0, below the best of the ~90 kept."""
    tokenizer = model.processor.tokenizer
    keep = {tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in string.printable[:95] if c != "#"}
    with torch.no_grad():
        weight = model.llm.get_output_embeddings().weight
        for token in set(range(weight.shape[0])) - keep:
            weight[token] = 0
    return model


def _fake_plugin(site: Path) -> None:
    """The ECG example as an installed distribution: its entry point, its code on the path."""
    info = site / "onellm_ecg-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onellm-ecg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[onellm.modalities]\necg = onellm_ecg:ECG\n")


class Server:
    def __init__(self, model_dir: Path, site: Path, *options: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = os.pathsep.join([str(site), str(PLUGIN), *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {
            **os.environ,
            "PYTHONPATH": path,
            "PYTHONWARNINGS": "ignore",
            "OMP_NUM_THREADS": "1",
            "ONELLM_API_KEY": KEY,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "onellm.cli",
                "serve",
                "--model",
                str(model_dir),
                "--port",
                str(self.port),
                "--served-model-name",
                NAME,
                *options,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("the server did not start")

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def post(self, body: bytes | dict, headers: dict | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEY}", **(headers or {})}
        if isinstance(body, dict):
            return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        return httpx.post(f"{self.url}/v1/chat/completions", content=body, headers=headers, timeout=60)

    def close(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(server, the same model here, the folder of files the server may read, the good files)."""
    d = tmp_path_factory.mktemp("serve")
    sys.path.insert(0, str(PLUGIN))
    from onellm_ecg import ECG

    register_modality(ECG, source="test", replace=True)
    torch.manual_seed(0)
    model = OneLLM.from_preset("tiny")
    model.add_modality("ecg")
    _printable(model).save_pretrained(d / "model")
    _fake_plugin(d / "site")
    allowed = d / "allowed"
    allowed.mkdir()
    files = good_files(allowed)
    server = Server(
        d / "model",
        d / "site",
        "--max-inputs",
        "4",
        "--max-body-mb",
        "2",
        "--max-file-mb",
        "1",
        "--batch-window-ms",
        "50",
        "--allowed-dir",
        str(allowed),
    )
    try:
        yield server, OneLLM.from_pretrained(d / "model").eval(), allowed, files
    finally:
        log = server.close()
        sys.path.remove(str(PLUGIN))
        MODALITIES.unregister("ecg")
        assert "Traceback" not in log, log[-3000:]


# parts ----------------------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


MIME = {".png": "image/png", ".jpg": "image/jpeg", ".mp4": "video/mp4"}
STANDARD = {"image": "image_url", "video": "video_url", "audio": "input_audio"}


def _part(case: Case) -> dict:
    """The part a client would send for the case's file: the standard part of its modality,
    or the documented `onellm_input` (with companions and meta) for the others."""
    main = case.paths[0]
    kind = STANDARD.get(case.modality)
    if kind in ("image_url", "video_url"):
        return {"type": kind, kind: {"url": f"data:{MIME[main.suffix]};base64,{_b64(main)}"}}
    if kind == "input_audio":
        return {"type": kind, kind: {"data": _b64(main), "format": main.suffix[1:]}}
    payload = {
        "modality": case.modality,
        "data": _b64(main),
        "format": main.suffix[1:],
        "companions": [{"data": _b64(p), "format": p.suffix[1:]} for p in case.paths[1:]],
    }
    if case.meta:
        payload["meta"] = case.meta
    return {"type": "onellm_input", "onellm_input": payload}


def _ask(server: Server, parts: list[dict], question: str | None = None, **options):
    content = ([{"type": "text", "text": question}] if question else []) + parts
    options = {"max_tokens": TOKENS, "temperature": 0, **options}
    return server.client().chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": content}], **options
    )


def _loaded(model: OneLLM, case: Case) -> torch.Tensor:
    return load_input(case.paths, case.modality, model.tokenizers[case.modality], meta=case.meta).unsqueeze(0)


def _text_answer(model: OneLLM, prompt: str, tokens: int = TOKENS) -> str:
    ids = model.generate(**model.processor([prompt]), inputs=ModalityBatch(), max_new_tokens=tokens, do_sample=False)
    return model.processor.decode(ids)[0]


# answers --------------------------------------------------------------------------------


def test_text_only_is_answered_as_the_model_answers(world):
    server, model, _, _ = world
    reply = server.client().chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "What is a room?"}], max_tokens=TOKENS, temperature=0
    )
    prompt = model.processor.prompt("What is a room?", modalities=[])
    assert reply.choices[0].message.content == _text_answer(model, prompt)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == TOKENS
    assert reply.usage.prompt_tokens == len(model.processor.encode(prompt)[0])


@pytest.mark.parametrize(
    "name",
    [
        "photo.png",
        "photo.jpg",
        "clip.mp4",
        "tone.wav",
        "tone.flac",
        "cloud.ply",
        "cloud.npy",
        "room.depth.png",
        "room.normal.npy",
        "walk.csv",
        "walk.npy",
        "scan.nii",
        "scan.npy",
    ],
)
def test_each_modality_is_answered_as_model_answer(world, name):
    server, model, _, files = world
    case = next(c for c in files if c.name == name)
    reply = _ask(server, [_part(case)], "What is in it?")
    expected = model.answer({case.modality: _loaded(model, case)}, "What is in it?", max_new_tokens=TOKENS)[0]
    assert reply.choices[0].message.content == expected and len(expected) > 3
    # The prompt's tokens include the input's run of modality tokens (Q + 2).
    prompt = model.processor.prompt("What is in it?", modalities=[case.modality])
    assert reply.usage.prompt_tokens == len(model.processor.encode(prompt)[0])
    assert reply.usage.prompt_tokens > len(model.processor.encode(prompt.replace("<modality>", ""))[0]) + 8


def test_no_question_gets_the_modality_caption_prompt(world):
    server, model, _, files = world
    case = next(c for c in files if c.name == "photo.png")
    expected = model.answer({"image": _loaded(model, case)}, max_new_tokens=TOKENS)[0]
    assert _ask(server, [_part(case)]).choices[0].message.content == expected


def test_a_video_with_its_soundtrack_is_two_parts(world, tmp_path):
    server, model, _, _ = world
    clip = bar_clip(tmp_path / "bar.mp4", sound=True)
    parts = [
        {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{_b64(clip)}"}},
        {"type": "input_audio", "input_audio": {"data": _b64(clip), "format": "mp4"}},
    ]
    reply = _ask(server, parts, "What happens?")
    video = load_input([clip], "video", model.tokenizers["video"]).unsqueeze(0)
    audio = load_input([clip], "audio", model.tokenizers["audio"]).unsqueeze(0)
    expected = model.answer([("video", video), ("audio", audio)], "What happens?", max_new_tokens=TOKENS)[0]
    assert reply.choices[0].message.content == expected
    alone = model.answer({"video": video}, "What happens?", max_new_tokens=TOKENS)[0]
    assert expected != alone  # the soundtrack is an input of its own


def test_a_point_cloud_and_an_imu_window_through_the_documented_part(world):
    server, model, _, files = world
    cloud, walk = (next(c for c in files if c.name == n) for n in ("cloud.ply", "walk.npy"))
    assert {_part(cloud)["type"], _part(walk)["type"]} == {"onellm_input"}
    reply = _ask(server, [_part(cloud), _part(walk)], "Which is it?")
    expected = model.answer(
        [("point", _loaded(model, cloud)), ("imu", _loaded(model, walk))], "Which is it?", max_new_tokens=TOKENS
    )[0]
    assert reply.choices[0].message.content == expected


def test_two_images_in_one_message(world):
    server, model, _, files = world
    png, jpg = (next(c for c in files if c.name == n) for n in ("photo.png", "photo.jpg"))
    reply = _ask(server, [_part(png), _part(jpg)], "Same?")
    expected = model.answer(
        [("image", _loaded(model, png)), ("image", _loaded(model, jpg))], "Same?", max_new_tokens=TOKENS
    )[0]
    assert reply.choices[0].message.content == expected


def test_a_plugin_modality(world, tmp_path):
    server, model, _, _ = world
    import numpy as np
    from onellm_ecg.synth import synthesize

    written = synthesize(tmp_path, "beat", np.random.default_rng(0))
    case = Case("beat", "ecg", [tmp_path / written["files"][0]])
    reply = _ask(server, [_part(case)], "Is it regular?")
    expected = model.answer({"ecg": _loaded(model, case)}, "Is it regular?", max_new_tokens=TOKENS)[0]
    assert reply.choices[0].message.content == expected
    card = server.client().models.list().data[0]
    assert card.id == NAME and "ecg" in card.model_extra["modalities"]


def test_multi_turn_history_follows_the_processor(world):
    server, model, _, files = world
    case = next(c for c in files if c.name == "photo.png")
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Describe it."}, _part(case)]},
        {"role": "assistant", "content": "A red wall."},
        {"role": "user", "content": "And the floor?"},
    ]
    reply = server.client().chat.completions.create(model=NAME, messages=messages, max_tokens=TOKENS, temperature=0)
    prompt = model.processor.prompt("And the floor?", [("Describe it.", "A red wall.")], modalities=["image"])
    batch = model.processor([prompt])
    ids = model.generate(
        **batch, inputs=ModalityBatch.single("image", _loaded(model, case)), max_new_tokens=TOKENS, do_sample=False
    )
    assert reply.choices[0].message.content == model.processor.decode(ids)[0]


def test_streaming_chunks_join_to_the_answer(world):
    server, model, _, files = world
    case = next(c for c in files if c.name == "tone.wav")
    whole = _ask(server, [_part(case)], "Loud?", max_tokens=40)
    stream = server.client().chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Loud?"}, _part(case)]}],
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, arrived, usage, reasons = [], [], None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                arrived.append(time.monotonic())
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert len(pieces) > 5 and arrived[0] < arrived[-1]  # token by token, not all at once
    assert "".join(pieces) == whole.choices[0].message.content
    assert reasons == ["length"] and usage.completion_tokens == 40 == whole.usage.completion_tokens


def test_stop_strings_and_seeded_sampling(world):
    server, model, _, files = world
    case = next(c for c in files if c.name == "photo.png")
    full = _ask(server, [_part(case)], "Name it.", max_tokens=30).choices[0].message.content
    stop = full[10:12]
    cut = _ask(server, [_part(case)], "Name it.", max_tokens=30, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"
    drawn = [
        _ask(server, [_part(case)], "Name it.", max_tokens=30, temperature=1.0, seed=7, top_p=0.9)
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert drawn[0] == drawn[1] != full


def test_concurrent_requests_share_a_batch_and_answer_as_alone(world):
    server, model, _, files = world
    cases = [next(c for c in files if c.name == n) for n in ("photo.png", "tone.wav", "walk.npy", "scan.nii")]
    alone = [_ask(server, [_part(c)], "What?").choices[0].message.content for c in cases]
    before = _metric(server, "onellm_batch_size_count")
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = _ask(server, [_part(cases[i % 4])], "What?").choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[i] for i in range(8)] == alone * 2
    batches = _metric(server, "onellm_batch_size_count") - before
    assert batches < 8  # several requests went through one generate


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_local_files_only_from_the_allowed_folder(world):
    server, model, allowed, files = world
    case = next(c for c in files if c.name == "photo.png")
    url = (allowed / "photo.png").as_uri()
    reply = _ask(server, [{"type": "image_url", "image_url": {"url": url}}], "What?")
    assert reply.choices[0].message.content == _ask(server, [_part(case)], "What?").choices[0].message.content
    for outside in [Path(__file__).as_uri(), (allowed / ".." / "model" / "config.json").as_uri()]:
        response = server.post(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": outside}}]}]}
        )
        assert response.status_code == 403 and str(allowed) not in response.text


def test_the_api_key_is_required(world):
    server, _, _, _ = world
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key").chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}])
    for headers in [{}, {"Authorization": f"Basic {KEY}"}, {"Authorization": f"Bearer {KEY}x"}]:
        response = httpx.post(
            f"{server.url}/v1/chat/completions", headers=headers, json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


# bad requests ---------------------------------------------------------------------------


def _user(*parts: dict | str) -> dict:
    return {
        "messages": [
            {
                "role": "user",
                "content": list(parts) if parts and isinstance(parts[0], dict) else (parts[0] if parts else []),
            }
        ]
    }


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _custom(**payload) -> dict:
    return {"type": "onellm_input", "onellm_input": payload}


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()
HI = {"role": "user", "content": "hi"}
HOSTILE: dict[str, bytes | dict] = {
    "malformed json": b"{bad",
    "empty body": b"",
    "json list": b"[1, 2]",
    "not utf-8": b"\xff\xfe\x00garbage",
    "deep nesting": b"[" * 200_000,
    "nan temperature": b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    "no messages": {},
    "empty messages": {"messages": []},
    "messages a string": {"messages": "hi"},
    "message a number": {"messages": [5]},
    "no content": {"messages": [{"role": "user"}]},
    "content a number": {"messages": [{"role": "user", "content": 42}]},
    "empty content": _user(),
    "blank text": _user("   "),
    "system message": {"messages": [{"role": "system", "content": "be nice"}, HI]},
    "tool message": {"messages": [{"role": "tool", "content": "x"}, HI]},
    "assistant first": {"messages": [{"role": "assistant", "content": "x"}, HI]},
    "assistant last": {"messages": [HI, {"role": "assistant", "content": "x"}]},
    "assistant with an image": {"messages": [HI, {"role": "assistant", "content": [_image(PNG)]}, HI]},
    "part a string": {"messages": [{"role": "user", "content": ["text"]}]},
    "part without type": _user({"text": "hi"}),
    "unknown part type": _user({"type": "image_file", "image_file": {"file_id": "x"}}),
    "text part without text": _user({"type": "text"}),
    "image_url without url": _user({"type": "image_url", "image_url": {}}),
    "image_url a string": _user({"type": "image_url", "image_url": PNG}),
    "broken base64": _user(_image("data:image/png;base64,@@@@not base64")),
    "data url without base64": _user(_image("data:image/png,rawbytes")),
    "unknown media type": _user(_image("data:foo/bar;base64,AAAA")),
    "undecodable png": _user(_image(PNG)),
    "a video as an image": _user({"type": "video_url", "video_url": {"url": PNG}}),
    "remote url": _user(_image("http://example.com/cat.png")),
    "ftp url": _user(_image("ftp://example.com/cat.png")),
    "file outside": _user(_image("file:///etc/passwd")),
    "file traversal": _user(_image("file:///tmp/../etc/passwd")),
    "file with a NUL": _user(_image("file:///tmp/x%00y.png")),
    "audio without format": _user({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
    "audio format a path": _user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "../../x"}}),
    "audio format exe": _user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "exe"}}),
    "audio of zeros": _user({"type": "input_audio", "input_audio": {"data": "AAAAAAAA", "format": "wav"}}),
    "unknown modality": _user(_custom(modality="sonar", data="AAAA", format="npy")),
    "no modality": _user(_custom(data="AAAA", format="npy")),
    "data a number": _user(_custom(modality="point", data=12, format="npy")),
    "meta nested": _user(_custom(modality="imu", data="AAAA", format="npy", meta={"a": {"b": 1}})),
    "meta wrong": _user(
        _custom(modality="imu", data=base64.b64encode(bytes(64)).decode(), format="npy", meta={"sample_rate": "fast"})
    ),
    "companion for image": _user(
        _custom(modality="image", data="AAAA", format="png", companions=[{"data": "AAAA", "format": "png"}])
    ),
    "companion a string": _user(_custom(modality="depth", data="AAAA", format="png", companions=["x"])),
    "too many inputs": _user(*[_image(PNG)] * 5),
    "prompt too long": _user("why " * 400),
    "max_tokens 0": {"messages": [HI], "max_tokens": 0},
    "max_tokens a string": {"messages": [HI], "max_tokens": "5"},
    "max_tokens over the context": {"messages": [HI], "max_tokens": 1000},
    "temperature 5": {"messages": [HI], "temperature": 5},
    "temperature a word": {"messages": [HI], "temperature": "hot"},
    "top_p 0": {"messages": [HI], "top_p": 0},
    "n 2": {"messages": [HI], "n": 2},
    "five stops": {"messages": [HI], "stop": ["a", "b", "c", "d", "e"]},
    "stop a number": {"messages": [HI], "stop": 7},
    "seed a float": {"messages": [HI], "seed": 1.5},
    "stream a word": {"messages": [HI], "stream": "yes"},
    "stream_options a list": {"messages": [HI], "stream": True, "stream_options": [1]},
    "unsupported field": {"messages": [HI], "logprobs": True},
    "another model": {"messages": [HI], "model": "gpt-4"},
    "body over the limit": _user("x" * (3 * 2**20)),
    "file over the limit": _user(_image("data:image/png;base64," + base64.b64encode(bytes(3 * 2**19)).decode())),
}
SERVER_PATH = ("/tmp/", "/work/", "/usr/", "/root/", "/home/", "site-packages", "Traceback", 'File "')


def _assert_refused(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert isinstance(error["message"], str) and len(error["message"]) > 5, (what, error)
    assert isinstance(error["type"], str) and "param" in error and "code" in error, (what, error)
    assert not any(s in response.text for s in SERVER_PATH), (what, response.text[:500])


def _good(server: Server) -> None:
    answered = server.post({"messages": [HI], "max_tokens": 1})
    assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"] is not None


def test_hostile_requests_get_a_4xx_and_the_next_is_answered(world):
    server, _, _, _ = world
    for what, body in HOSTILE.items():
        _assert_refused(server.post(body), what)
        _good(server)
    _assert_refused(httpx.get(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}), "GET")
    _assert_refused(httpx.get(f"{server.url}/v2/nothing", headers={"Authorization": f"Bearer {KEY}"}), "no route")
    _good(server)
    assert server.process.poll() is None


def test_damaged_files_get_a_4xx_naming_the_part(world, tmp_path):
    server, _, _, files = world
    bad = [c for c in damaged_files(tmp_path, files) if c.expect == "bad"]
    assert len(bad) >= 40
    refused = {}
    for case in bad:
        response = server.post(_user({"type": "text", "text": "What?"}, _part(case)))
        _assert_refused(response, case.name)
        refused[response.json()["error"]["code"]] = refused.get(response.json()["error"]["code"], 0) + 1
        if response.status_code == 400:
            assert response.json()["error"]["param"].startswith("messages[0].content[1]"), case.name
        _good(server)
    print(f"\n{len(bad)} damaged files refused: {refused}")


def test_a_full_queue_answers_429_and_a_slow_answer_times_out(world, tmp_path):
    """A second server that holds 2 requests and batches none: of 8 at once, those over the
    bound get 429 with Retry-After at once; a request queued behind a long answer, past
    --timeout, gets 504."""
    _, _, allowed, _ = world
    small = Server(
        allowed.parent / "model", allowed.parent / "site", "--max-queue", "2", "--max-batch", "1", "--timeout", "1"
    )
    try:
        results: list[httpx.Response] = []

        def ask(tokens: int = 50) -> None:
            results.append(small.post({"messages": [HI], "max_tokens": tokens}))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes.count(429) >= 4 and set(codes) <= {200, 429}, codes
        full = next(r for r in results if r.status_code == 429)
        assert full.headers["retry-after"] == "1" and full.json()["error"]["code"] == "queue_full"
        first = threading.Thread(target=ask, args=(800,))
        first.start()
        time.sleep(0.2)
        queued = small.post({"messages": [HI], "max_tokens": 800})
        first.join()
        assert queued.status_code == 504 and queued.json()["error"]["code"] == "timeout"
        _good(small)
    finally:
        small.close()


def test_streamed_pieces_join_to_the_cut_and_stripped_answer():
    """Token by token, whatever the text: half characters, white space at either end, stop
    strings split over tokens; the pieces sent join to the text the processor would give."""
    import random

    from onellm.model.llm import byte_tokenizer
    from onellm.serving.answer_text import AnswerText

    tokenizer = byte_tokenizer()
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice(["a", " ", "#", "é", "\n", "b", "##", " #"]) for _ in range(rng.randint(0, 20)))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for stops in [("###",), ("###", "b#"), ()]:
            answer, sent = AnswerText(tokenizer, stops), ""
            for token in ids:
                stopped = answer.add(token)
                sent += answer.delta()
                if stopped:
                    break
            sent += answer.delta(final=True)
            cut = min([text.find(s) for s in stops if s in text], default=len(text))
            assert sent == answer.text() == text[:cut].strip(), (text, stops)
