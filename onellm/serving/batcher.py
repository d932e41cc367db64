"""The queue and the batches: requests that arrive within a batch window (up to a maximum
batch size) and sample alike go through one `OneLLM.generate`, whatever their modalities and
numbers of inputs (ModalityBatch.of_samples), each row stopping on its own (its max_tokens,
its stop strings, the end-of-text token, its client gone). One thread runs the model."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..model.llm import decoding, generate_kwargs
from ..model.modality_batch import ModalityBatch
from ..processor import ONELLM_STOP
from .answer_text import AnswerText
from .metrics import Metrics
from .request import Sampling

if TYPE_CHECKING:
    from ..model.onellm import OneLLM

log = logging.getLogger("onellm.serving")
# From this many rows a batch decodes into a cache allocated once for its whole length
# (transformers' static cache) instead of one that grows by a copy of itself every step: with
# many rows of long prompts that copy is the largest cost of a step (measured on the tiny
# preset: 32 rows 1.7x faster, same tokens), while a row or two decode faster without the
# preallocation.
STATIC_CACHE_ROWS = 4


@dataclass(eq=False)
class Job:
    """One request's prompt and inputs, and the channel its answer goes back by: events
    ("delta", text), then ("done", finish_reason, text, completion_tokens) or ("error", message)."""

    prompt: str
    inputs: list[tuple[str, torch.Tensor]]
    sampling: Sampling
    max_tokens: int
    stops: tuple[str, ...]
    prompt_tokens: int
    loop: asyncio.AbstractEventLoop
    release: Callable[[], None] = lambda: None  # told once, when the batcher is done with the job
    _released: bool = False
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)

    def emit(self, *event: Any) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def finished(self) -> None:
        """Gives the job's place in the server back, once."""
        if not self._released:
            self._released = True
            self.release()

    def batch_key(self) -> Any:
        # A seeded request is reproducible only alone: a batch draws from one generator.
        return self if self.sampling.seed is not None else self.sampling


class Batcher:
    def __init__(self, model: OneLLM, metrics: Metrics, max_batch: int = 32, window_s: float = 0.01) -> None:
        if max_batch < 1 or window_s < 0:
            raise ValueError(f"max batch {max_batch} must be at least 1 and the window {window_s} not negative")
        self.model, self.metrics, self.max_batch, self.window_s = model, metrics, max_batch, window_s
        self._waiting: deque[Job] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="onellm-batcher", daemon=True)
        tokenizer = model.processor.tokenizer
        eos = model.llm.generation_config.eos_token_id
        self._eos = {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        # The onellm template's answers end at the next turn's marker, as processor.decode cuts them.
        self._template_stops = (ONELLM_STOP,) if model.processor.prompt_template == "onellm" else ()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        with self._ready:
            self._waiting.append(job)
            self.metrics.move(waiting=1)
            self._ready.notify()

    def _serve(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            try:
                self._generate(jobs)
            except Exception:  # one failed batch ends its requests, not the server
                log.exception("generation failed for a batch of %d", len(jobs))
                for job in jobs:
                    job.emit("error", "generation failed")
            for job in jobs:  # those a failed batch left unfinished
                job.finished()

    def _next_batch(self) -> list[Job] | None:
        """The oldest request and those that sample like it, once the batch is full, the
        oldest has waited the window out or no other admitted request could still join;
        requests whose client has gone are dropped."""
        with self._ready:
            while True:
                while self._waiting and self._waiting[0].cancelled.is_set():
                    self._waiting.popleft().finished()
                    self.metrics.move(waiting=-1)
                if self._stopping:
                    return None
                if not self._waiting:
                    self._ready.wait()
                    continue
                first = self._waiting[0]
                alike = [j for j in self._waiting if j.batch_key() == first.batch_key() and not j.cancelled.is_set()]
                left = first.arrived + self.window_s - time.monotonic()
                # Only requests already admitted (still being read and decoded) can join
                # within the window; with none, a lone request waits for nothing.
                joining = self.metrics.in_server - len(self._waiting)
                if len(alike) >= self.max_batch or left <= 0 or joining <= 0:
                    jobs = alike[: self.max_batch]
                    for job in jobs:
                        self._waiting.remove(job)
                    self.metrics.move(waiting=-len(jobs))
                    return jobs
                self._ready.wait(timeout=left)

    def _generate(self, jobs: list[Job]) -> None:
        model, processor = self.model, self.model.processor
        device = model.encoder.image_pos_embed.device
        batch = {k: v.to(device) for k, v in processor([j.prompt for j in jobs]).items()}
        inputs = ModalityBatch.of_samples([j.inputs for j in jobs]).to(device)
        rows = _Rows(jobs, processor.tokenizer, self._template_stops, self._eos)
        sampling = jobs[0].sampling
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        kwargs = {
            "do_sample": False,  # greedy at temperature 0, whatever the LM's own generation_config says
            **generate_kwargs(decoding(max(j.max_tokens for j in jobs), sampling.temperature, sampling.top_p)),
            "stopping_criteria": StoppingCriteriaList([rows]),
        }
        if len(jobs) >= STATIC_CACHE_ROWS:
            # No torch.compile of the step (transformers' default beside a static cache on an
            # accelerator): every batch has its own shape, each would compile anew.
            kwargs.update(cache_implementation="static", disable_compile=True)
        start = time.perf_counter()
        model.generate(**batch, inputs=inputs, **kwargs)
        rows.finish_all("length")
        self.metrics.batch(len(jobs), sum(j.prompt_tokens for j in jobs), sum(rows.counts), time.perf_counter() - start)


class _Rows(StoppingCriteria):
    """Called by generate after each step with the tokens so far: hands each row's new text
    to its request and tells generate which rows are done."""

    def __init__(self, jobs: list[Job], tokenizer: Any, template_stops: tuple[str, ...], eos: set[int]) -> None:
        self.jobs, self.eos = jobs, eos
        self.texts = [AnswerText(tokenizer, template_stops + j.stops) for j in jobs]
        self.done = [False] * len(jobs)
        self.counts = [0] * len(jobs)  # tokens generated per row, an end-of-text token included

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for i, token in enumerate(input_ids[:, -1].tolist()):
            if self.done[i]:
                continue
            job, text = self.jobs[i], self.texts[i]
            if job.cancelled.is_set():
                self.done[i] = True
                job.finished()
                continue
            self.counts[i] += 1
            if token in self.eos:
                self._finish(i, "stop")
            elif text.add(token):
                self._finish(i, "stop")
            elif self.counts[i] >= job.max_tokens:
                self._finish(i, "length")
            elif delta := text.delta():
                job.emit("delta", delta)
        return torch.tensor(self.done, device=input_ids.device)

    def finish_all(self, reason: str) -> None:
        for i in range(len(self.jobs)):
            if not self.done[i]:
                self._finish(i, reason)

    def _finish(self, i: int, reason: str) -> None:
        self.done[i] = True
        job, text = self.jobs[i], self.texts[i]
        job.finished()  # before the answer goes out: the client's next request finds the place free
        if delta := text.delta(final=True):
            job.emit("delta", delta)
        job.emit("done", reason, text.text(), self.counts[i])
