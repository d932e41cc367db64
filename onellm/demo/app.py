"""The gradio page: upload a file of any installed modality, look at it, caption it or chat
about it, and see how the router spread the input over the experts.

Everything modality-specific comes from the registry (extensions, companions, caption
prompt, preview, the other streams a file holds); the page itself knows no modality by name.
A file that holds other modalities' streams (a video's soundtrack) can be asked about together
with them, as further inputs."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr
import pandas as pd
from PIL import Image

from ..errors import describe
from ..inputs import guess_modality, load_input
from ..model.llm import decoding
from ..registry import caption_prompt, get_modality
from .chat import modality_choices, stream_answer

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig

    from ..model.onellm import OneLLM

# What a loader or previewer raises for a file it cannot use (BadInputError is a ValueError).
INPUT_ERRORS = (ValueError, OSError)
PREVIEW_KINDS = ("plot", "image", "video", "audio")
# The box that adds the streams a file holds (ModalitySpec.streams) as further inputs.
STREAMS_LABEL = "use the file's {streams} too"
Message = dict[str, Any]


class _Input(NamedTuple):
    """One input of the prompt: `paths` (the file, then its companions) read as `modality`."""

    modality: str
    paths: list[Path]
    stream: bool = False  # another modality's stream of the upload (a video's soundtrack)
    source: str = ""  # the upload's own modality, for a stream


def build_app(model: OneLLM, title: str = "onellm", meta: dict[str, Any] | None = None) -> gr.Blocks:
    """The page for one loaded model; generation requests are queued one at a time. `meta`
    reaches the loader with every upload (an IMU .npy's sample_rate, say)."""
    model.eval()
    defaults = model.generation_config  # the sliders start at the model's own settings
    choices = modality_choices(model)
    if not choices:
        raise ValueError(f"none of the model's modalities ({', '.join(model.modalities)}) is installed")

    def on_upload(file: str | None, modality: str) -> list[Any]:
        if file:
            try:
                modality = guess_modality(Path(file), {m: model.tokenizers[m] for m in choices})
            except ValueError:
                gr.Info(f"{Path(file).name}: the file does not tell its modality; choose it in the list.")
        return [modality, _companion_update(modality), *_previews(modality, file, None), [], None]

    def on_modality(modality: str, file: str | None) -> list[Any]:
        return [_companion_update(modality), *_previews(modality, file, None)]

    def on_companion(modality: str, file: str | None, companion: str | None) -> list[Any]:
        return _previews(modality, file, companion)

    def on_sound(modality: str, file: str | None, companion: str | None, sound: bool) -> list[Any]:
        return _previews(modality, file, companion, sound)

    def sound_reset(modality: str) -> dict[str, Any]:
        """A new upload or modality starts as one input; the box is offered when the file holds
        other streams (a video's sound) that the model takes too."""
        streams = get_modality(modality).streams
        return gr.update(
            value=False, visible=bool(streams) and all(s in choices for s in streams), label=_streams_label(modality)
        )

    def caption(
        file, companion, modality, history, max_new_tokens, temperature, top_p, sound=False
    ) -> Iterator[list[Any]]:
        generation = decoding(int(max_new_tokens), float(temperature), float(top_p))
        yield from _respond(model, file, companion, modality, None, history, generation, meta, sound)

    def chat(
        file, companion, modality, question, history, max_new_tokens, temperature, top_p, sound=False
    ) -> Iterator[list[Any]]:
        if not (question or "").strip():
            raise gr.Error("Type a question first (or press Caption).")
        generation = decoding(int(max_new_tokens), float(temperature), float(top_p))
        yield from _respond(model, file, companion, modality, question.strip(), history, generation, meta, sound)

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"## {title}\nUpload a file, check its modality, then caption it or ask about it.")
        with gr.Row():
            with gr.Column(scale=2):
                file = gr.File(label="input file", type="filepath", elem_id="file")
                modality = gr.Dropdown(choices, value=choices[0], label="modality", elem_id="modality")
                sound = gr.Checkbox(False, label=_streams_label(choices[0]), visible=False, elem_id="sound")
                companion = gr.File(type="filepath", **_companion_props(choices[0]))
                plot = gr.Plot(label="preview", show_label=False, visible=False, elem_classes="preview")
                image = gr.Image(label="preview", visible=False, interactive=False, elem_classes="preview")
                video = gr.Video(label="preview", visible=False, interactive=False, elem_classes="preview")
                audio = gr.Audio(label="audio", visible=False, interactive=False, elem_classes="preview")
                router = gr.BarPlot(
                    x="expert",
                    y="weight",
                    y_lim=[0, 1],
                    height=180,
                    label="router weights over the experts for this input",
                    elem_id="router",
                )
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="conversation", height=380, elem_id="conversation")
                question = gr.Textbox(label="question", placeholder="Ask about the file; Enter sends")
                with gr.Row():
                    caption_button = gr.Button("Caption", variant="primary", elem_id="caption")
                    send_button = gr.Button("Send")
                    clear_button = gr.Button("Clear")
                with gr.Accordion("generation settings", open=False):
                    max_new_tokens = gr.Slider(1, 512, value=defaults.max_new_tokens, step=1, label="max new tokens")
                    temperature = gr.Slider(
                        0,
                        2,
                        value=defaults.temperature if defaults.do_sample else 0,
                        step=0.05,
                        label="temperature (0: greedy)",
                    )
                    top_p = gr.Slider(0.05, 1, value=defaults.top_p, step=0.05, label="top-p")
        previews = [plot, image, video, audio]
        settings = [max_new_tokens, temperature, top_p]

        hidden = [gr.update(value=None, visible=False)] * len(previews)
        file.clear(lambda: hidden, None, previews, api_visibility="private")
        file.upload(
            on_upload, [file, modality], [modality, companion, *previews, chatbot, router], api_name="upload"
        ).then(sound_reset, modality, sound, api_visibility="private")
        modality.input(on_modality, [modality, file], [companion, *previews], api_name="set_modality").then(
            sound_reset, modality, sound, api_visibility="private"
        )
        companion.upload(on_companion, [modality, file, companion], previews, api_name="preview")
        sound.input(on_sound, [modality, file, companion, sound], previews, api_visibility="private")
        # One model serves every request: both answer paths share one queue slot. The box
        # comes last, so that a client which leaves it out asks about the upload alone.
        answer = dict(outputs=[chatbot, router], concurrency_id="model", concurrency_limit=1)
        caption_button.click(
            caption, [file, companion, modality, chatbot, *settings, sound], api_name="caption", **answer
        )
        gr.on(
            [send_button.click, question.submit],
            chat,
            [file, companion, modality, question, chatbot, *settings, sound],
            api_name="chat",
            **answer,
        ).then(lambda: "", None, question, api_visibility="private")
        clear_button.click(lambda: ([], None), None, [chatbot, router], api_visibility="private")
    demo.queue(max_size=32)
    return demo


def _respond(
    model: OneLLM,
    file: str | None,
    companion: str | None,
    modality: str,
    question: str | None,
    history: list[Message] | None,
    generation: GenerationConfig,
    meta: dict[str, Any] | None = None,
    sound: bool = False,
) -> Iterator[list[Any]]:
    """Streams [conversation, router chart] updates; a file the loader rejects becomes an
    error message on the page and the server carries on. `question` None: a caption request
    (shown as the modalities' caption prompt; asked as the model's config.prompting says).
    `sound`: a video is asked about together with its own soundtrack."""
    if not file:
        raise gr.Error("Upload a file first.")
    history = list(history or [])
    inputs = _inputs(modality, file, companion, sound)
    paths = [p for item in inputs for p in item.paths]
    loaded = [(item.modality, _load(model, item, meta)) for item in inputs]
    modalities = [m for m, _ in loaded]
    prompt = model.processor.request(modalities, question, _turns(history), prompting=model.config.prompting)
    asked = history + [{"role": "user", "content": question or caption_prompt(modalities)}]
    model.router_statistics(reset=True)
    text = ""
    try:
        for text in stream_answer(model, loaded, prompt, generation):
            yield [asked + [{"role": "assistant", "content": text}], gr.skip()]
    except INPUT_ERRORS as err:  # the tokenizer's own shape check, say
        raise gr.Error(_for_user(err, paths), duration=None, print_exception=False) from err
    weights = _router_weights(model.router_statistics(reset=True), modalities)
    yield [asked + [{"role": "assistant", "content": text}], _router_frame(weights)]


def _load(model: OneLLM, item: _Input, meta: dict[str, Any] | None) -> torch.Tensor:
    try:
        return load_input(item.paths, item.modality, model.tokenizers[item.modality], meta=meta)
    except Exception as err:  # load_input names the file; anything else still ends this request only
        hint = f'; untick "{_streams_label(item.source)}" to ask about the upload alone' if item.stream else ""
        raise gr.Error(_for_user(err, item.paths) + hint, duration=None, print_exception=False) from err


def _streams_label(modality: str) -> str:
    return STREAMS_LABEL.format(streams=" and ".join(get_modality(modality).streams) or "other streams")


def _modalities(modality: str, sound: bool) -> list[str]:
    """The prompt's inputs: the upload's modality, then, with `sound`, the other streams its
    file holds (a video's soundtrack)."""
    return [modality, *get_modality(modality).streams] if sound else [modality]


def _inputs(modality: str, file: str, companion: str | None, sound: bool = False) -> list[_Input]:
    """The upload as `modality` (with its companion), then, with `sound`, its other streams."""
    inputs = [_Input(modality, _paths(modality, file, companion))]
    inputs += [_Input(m, [Path(file)], stream=True, source=modality) for m in _modalities(modality, sound)[1:]]
    return inputs


def _router_weights(stats: dict[str, dict[str, Any]], modalities: list[str]) -> list[float]:
    """Mean router weight per expert over all the inputs' routed tokens."""
    rows = [stats[m] for m in dict.fromkeys(modalities) if m in stats]
    if len(rows) < 2:  # one input: its own means, as they are
        return rows[0]["mean_weight"] if rows else []
    total = sum(row["tokens"] for row in rows)
    return [
        sum(row["mean_weight"][e] * row["tokens"] for row in rows) / total for e in range(len(rows[0]["mean_weight"]))
    ]


def _for_user(err: Exception, paths: list[Path]) -> str:
    """The error with each upload named by its own file name: gradio keeps it as the last part
    of the server's temporary copy, whose folder the user neither knows nor should see."""
    text = describe(err)
    for path in paths:
        text = text.replace(str(path), path.name)
    return text


def _paths(modality: str, file: str, companion: str | None) -> list[Path]:
    """The companion upload counts only while the modality asks for one."""
    wanted = get_modality(modality).companions and companion
    return [Path(file), Path(companion)] if wanted else [Path(file)]


def _turns(history: list[Message]) -> list[tuple[str, str]]:
    turns, asked = [], None
    for message in history:
        text = _text(message["content"])
        if message["role"] == "user":
            asked = text
        elif asked is not None:
            turns.append((asked, text))
            asked = None
    return turns


def _text(content: Any) -> str:
    """Chatbot message content: a string, or a list of parts of which some carry text."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts)


def _router_frame(weights: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"expert": [f"expert {i}" for i in range(len(weights))], "weight": weights})


def _companion_props(modality: str) -> dict[str, Any]:
    companions = get_modality(modality).companions
    return {"label": f"companion: {', '.join(companions) or 'none'}", "visible": bool(companions)}


def _companion_update(modality: str) -> dict[str, Any]:
    """Shown, empty, for a modality with companions; hidden otherwise."""
    return gr.update(value=None, **_companion_props(modality))


def _previews(modality: str, file: str | None, companion: str | None, sound: bool = False) -> list[dict[str, Any]]:
    """Whatever each input's previewer returns, each item routed to the component that can
    show it: a figure to the plot, a PIL image to the image, a path by its MIME type to the
    image, video or audio; where two items would share one, the first input's shows (a
    video's own player plays its sound, beside the soundtrack's spectrogram)."""
    shown: dict[str, Any] = dict.fromkeys(PREVIEW_KINDS)
    for item in _inputs(modality, file, companion, sound) if file else []:
        for part in _preview_items(item):
            kind = _preview_kind(part)
            if kind is not None and shown[kind] is None:
                shown[kind] = str(part) if isinstance(part, Path) else part
    return [gr.update(value=value, visible=value is not None) for value in shown.values()]


def _preview_items(item: _Input) -> list[Any]:
    previewer = get_modality(item.modality).preview
    if previewer is None:
        return []
    try:
        result = previewer(item.paths)
    except Exception as err:  # a plugin's previewer too: no preview, and the upload goes on
        gr.Warning(f"no preview: {_for_user(err, item.paths)}")
        return []
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _preview_kind(item: Any) -> str | None:
    if item is None:
        return None
    if isinstance(item, (str, Path)):
        mime = mimetypes.guess_type(str(item))[0] or ""
        kind = mime.split("/")[0]
        return kind if kind in PREVIEW_KINDS else None
    if isinstance(item, Image.Image):
        return "image"
    return "plot"  # a matplotlib, plotly, altair or bokeh figure
