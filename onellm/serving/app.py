"""The HTTP side: routes, API key, admission (a bounded number of requests in the server),
body and media limits, the prompt-length check, and every error as an OpenAI error body."""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .batcher import Batcher, Job
from .conversation import build_prompt, load_inputs, read_messages
from .errors import APIError, bad_request
from .metrics import Metrics
from .parts import MediaPolicy, part_modalities
from .request import ChatRequest, parse_request

if TYPE_CHECKING:
    from ..model.onellm import OneLLM

log = logging.getLogger("onellm.serving")
MiB = 2**20


@dataclass(frozen=True)
class ServeConfig:
    """The server's knobs; `onellm serve --help` tells each."""

    model_name: str
    max_batch: int = 32
    batch_window_ms: float = 10.0
    max_queue: int = 64
    timeout_s: float = 120.0
    max_body_mb: float = 64.0
    max_file_mb: float = 32.0
    max_inputs: int = 8
    default_max_tokens: int | None = None  # None: the model's generation_config.json
    allowed_dir: Path | None = None
    allow_remote_media: bool = False
    api_key: str | None = None


def build_app(model: OneLLM, config: ServeConfig) -> FastAPI:
    model.eval()
    metrics = Metrics()
    batcher = Batcher(model, metrics, config.max_batch, config.batch_window_ms / 1000)
    policy = MediaPolicy(int(config.max_file_mb * MiB), config.allowed_dir, config.allow_remote_media)
    modalities = model.modalities
    context = int(getattr(model.llm.config, "max_position_embeddings", 0) or 2**31)
    default_max_tokens = config.default_max_tokens or model.generation_config.max_new_tokens or context
    # The request side tokenizes prompts with its own copy: a fast tokenizer is not safe to
    # share with the batcher's thread, which decodes answers meanwhile.
    prompter = copy.deepcopy(model.processor)
    prompter_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(title="onellm", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return JSONResponse(APIError(err.status_code, str(err.detail), code=code).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the traceback stays in the server's log
        metrics.answered(500)
        return JSONResponse(APIError(500, "internal server error", type="server_error").body(), status_code=500)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        metrics.answered(response.status_code)
        return response

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.api_key.encode()):
            raise APIError(
                401,
                "missing or wrong API key: send Authorization: Bearer <key>",
                type="authentication_error",
                code="invalid_api_key",
            )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queue_length": metrics.waiting}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        card = {
            "id": config.model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "onellm",
            "modalities": modalities,
            "content_parts": {"text": "text", **part_modalities(modalities), "onellm_input": "any"},
        }
        return {"object": "list", "data": [card]}

    @app.get("/metrics")
    async def read_metrics(request: Request) -> PlainTextResponse:
        authorize(request)
        return PlainTextResponse(metrics.render())

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        authorize(request)
        if metrics.in_server >= config.max_queue:
            raise APIError(
                429,
                f"the server holds {config.max_queue} requests already; retry shortly",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": "1"},
            )
        metrics.move(in_server=1)  # given back by the batcher once the job is generated or dropped
        deadline = time.monotonic() + config.timeout_s
        try:
            body = _json(await _body(request, int(config.max_body_mb * MiB)))
            chat_request = parse_request(body, context)
            if body.get("model") not in (None, config.model_name):
                raise APIError(
                    404,
                    f"this server serves the model {config.model_name!r}, not {body['model']!r}",
                    param="model",
                    code="model_not_found",
                )
            job = await run_in_threadpool(prepare, chat_request, asyncio.get_running_loop())
        except BaseException:
            metrics.move(in_server=-1)
            raise
        batcher.submit(job)
        if chat_request.stream:
            return StreamingResponse(_stream(job, chat_request, deadline), media_type="text/event-stream")
        return JSONResponse(await _complete(job, deadline))

    def prepare(chat_request: ChatRequest, loop: asyncio.AbstractEventLoop) -> Job:
        """Messages -> a Job: parts read, the prompt built and measured, the media decoded."""
        conversation = read_messages(chat_request.messages, modalities, policy, config.max_inputs)
        with prompter_lock:
            prompt = build_prompt(conversation, prompter, model.config.prompting)
            prompt_tokens = len(prompter.encode(prompt)[0])
        # Unasked, the default, shortened to what the context leaves.
        max_tokens = chat_request.max_tokens or max(1, min(default_max_tokens, context - prompt_tokens))
        if prompt_tokens + max_tokens > context:
            raise bad_request(
                f"the prompt is {prompt_tokens} tokens (its inputs' included) and {max_tokens} more "
                f"were asked for, over the model's context of {context} tokens",
                param="messages",
                code="context_length_exceeded",
            )
        inputs = load_inputs(conversation.uploads, model)
        return Job(
            prompt,
            inputs,
            chat_request.sampling,
            max_tokens,
            chat_request.stop,
            prompt_tokens,
            loop,
            release=lambda: metrics.move(in_server=-1),
        )

    async def _complete(job: Job, deadline: float) -> dict[str, Any]:
        text, reason, tokens = "", "stop", 0
        async for event in _events(job, deadline):
            if event[0] == "done":
                _, reason, text, tokens = event
        return _completion(job, text, reason, tokens)

    async def _stream(job: Job, chat_request: ChatRequest, deadline: float) -> AsyncIterator[str]:
        chunk = _chunker()
        try:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            async for event in _events(job, deadline):
                if event[0] == "delta":
                    yield _sse(chunk({"content": event[1]}))
                else:
                    _, reason, _, tokens = event
                    yield _sse(chunk({}, reason))
                    if chat_request.include_usage:
                        yield _sse({**chunk({}), "choices": [], "usage": _usage(job, tokens)})
        except APIError as err:  # the status line is sent already: the error goes in the stream
            yield _sse(err.body())
        finally:
            job.cancelled.set()  # a client gone mid-answer frees its row of the batch
        yield "data: [DONE]\n\n"

    async def _events(job: Job, deadline: float) -> AsyncIterator[tuple]:
        """The job's events until it is done; APIError on failure or past the deadline."""
        try:
            while True:
                event = await asyncio.wait_for(job.events.get(), timeout=max(0.0, deadline - time.monotonic()))
                if event[0] == "error":
                    raise APIError(500, event[1], type="server_error")
                yield event
                if event[0] == "done":
                    return
        except TimeoutError:
            raise APIError(
                504, f"no answer within the server's {config.timeout_s:g} s limit", type="timeout_error", code="timeout"
            ) from None
        finally:
            job.cancelled.set()

    def _chunker() -> Any:
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": config.model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
            }

        return chunk

    def _completion(job: Job, text: str, reason: str, tokens: int) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": config.model_name,
            "usage": _usage(job, tokens),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                    "logprobs": None,
                }
            ],
        }

    app.state.batcher, app.state.metrics = batcher, metrics
    return app


def _usage(job: Job, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": job.prompt_tokens + completion_tokens,
    }


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def _body(request: Request, limit: int) -> bytes:
    too_large = APIError(413, f"the request body is over the {limit / MiB:g} MiB limit", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        raise bad_request(f"the body is not valid JSON ({type(err).__name__})", code="invalid_json") from None
