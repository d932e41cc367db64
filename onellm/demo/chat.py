"""The model side of the demo, free of gradio: an answer streamed token by token (the
prompt, earlier turns included, is the processor's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ..model.llm import generate_kwargs
from ..processor import ONELLM_STOP
from ..registry import list_modalities

if TYPE_CHECKING:
    from ..model.onellm import OneLLM


def modality_choices(model: OneLLM) -> list[str]:
    """Modalities that are both installed and part of this model, in registry order."""
    return [m for m in list_modalities() if m in model.tokenizers]


class _Cancelled(StoppingCriteria):
    """Lets the reader stop generation: at the stop marker, or when the page goes away."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> bool:
        return self.event.is_set()


def stream_answer(
    model: OneLLM,
    inputs: Sequence[tuple[str, torch.Tensor]],
    prompt: str,
    generation: GenerationConfig | None = None,
) -> Iterator[str]:
    """Yields the answer so far after each decoded piece; generation runs in a thread that
    feeds transformers' TextIteratorStreamer. `inputs`: (modality, input) for each of the
    prompt's placeholders in order, e.g. [("video", v), ("audio", a)] for a video with its
    sound. `generation`: over the model's generation_config; see `onellm.model.llm.decoding`."""
    processor = model.processor
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = threading.Event()
    kwargs = {
        **(generate_kwargs(generation) if generation is not None else {}),
        "streamer": streamer,
        "stopping_criteria": StoppingCriteriaList([_Cancelled(stop)]),
    }
    failure: list[BaseException] = []

    def run() -> None:
        try:
            model.respond([prompt], [list(inputs)], **kwargs)  # the streamer hands the text over
        except BaseException as err:  # handed to the reader, which re-raises it
            failure.append(err)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    text, shown = "", None
    try:
        for piece in streamer:
            text += piece
            shown, finished = _visible(text, processor.prompt_template)
            yield shown
            if finished:
                break
        else:
            final, _ = _visible(text, processor.prompt_template, complete=True)
            if final != shown:
                yield final
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def _visible(text: str, template: str, complete: bool = False) -> tuple[str, bool]:
    """(what to show, whether the answer has ended). The onellm template's answers end at
    the next "###"; until the text is complete, a trailing part of that marker is held back
    so that it never flickers on screen."""
    if template != "onellm":
        return text.strip(), False
    if ONELLM_STOP in text:
        return text.split(ONELLM_STOP)[0].strip(), True
    held = 0 if complete else next((n for n in range(len(ONELLM_STOP) - 1, 0, -1) if text.endswith(ONELLM_STOP[:n])), 0)
    return text[: len(text) - held].strip(), False
