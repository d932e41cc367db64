"""The model side of the demo, free of gradio: earlier turns -> a prompt, and an answer
streamed token by token."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ..processor import ONELLM_STOP, ONELLM_SYSTEM, PLACEHOLDER, OneLLMProcessor
from ..registry import list_modalities

if TYPE_CHECKING:
    from ..model.onellm import OneLLM


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0


def modality_choices(model: "OneLLM") -> list[str]:
    """Modalities that are both installed and part of this model, in registry order."""
    return [m for m in list_modalities() if m in model.tokenizers]


def conversation_prompt(processor: OneLLMProcessor, turns: list[tuple[str, str]], question: str) -> str:
    """The processor's prompt template with the earlier (question, answer) turns before the
    new question; with no turns it is exactly `processor.prompt(question)`."""
    if processor.prompt_template == "chat":
        messages = []
        for asked, answered in turns:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": question})
        messages[0]["content"] = f"{PLACEHOLDER}\n{messages[0]['content']}"
        return processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    history = "".join(f"### Human: {asked}\n### Assistant: {answered}\n" for asked, answered in turns)
    return f"{PLACEHOLDER}{ONELLM_SYSTEM}\n\n{history}### Human: {question}\n### Assistant:"


class _Cancelled(StoppingCriteria):
    """Lets the reader stop generation: at the stop marker, or when the page goes away."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> bool:
        return self.event.is_set()


def stream_answer(
    model: "OneLLM", modality: str, x: torch.Tensor, prompt: str, settings: GenerationSettings
) -> Iterator[str]:
    """Yields the answer so far after each decoded piece; generation runs in a thread that
    feeds transformers' TextIteratorStreamer."""
    processor = model.processor
    device = model.encoder.image_pos_embed.device
    batch = {k: v.to(device) for k, v in processor([prompt]).items()}
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = threading.Event()
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList([_Cancelled(stop)]),
    )
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            model.generate(**batch, modality=modality, inputs=x.unsqueeze(0).to(device), **kwargs)
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
