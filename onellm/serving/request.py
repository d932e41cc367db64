"""The fields of a chat-completions body, checked one by one so that each error names its
field (`param`), as OpenAI's do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import bad_request

# Fields a client may send that change nothing here: who is asking, and the model name
# (checked against the served one by the app).
_IGNORED = {"user", "model"}
_KNOWN = {
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
} | _IGNORED
MAX_STOPS = 4  # as OpenAI


@dataclass(frozen=True)
class Sampling:
    """What decides how tokens are drawn; requests with equal Sampling may share a batch."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class ChatRequest:
    messages: list[Any]
    sampling: Sampling
    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the usage


def parse_request(body: Any, max_tokens_limit: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise bad_request(
            f"unsupported field {unknown[0]!r}; this server takes {', '.join(sorted(_KNOWN))}",
            param=unknown[0],
            code="unsupported_parameter",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", param="n", code="unsupported_value")
    stream = _typed(body, "stream", bool, False)
    options = _typed(body, "stream_options", dict, {})
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not _is_int(max_tokens) or not 1 <= max_tokens <= max_tokens_limit:
            raise bad_request(f"'max_tokens' must be an integer from 1 to {max_tokens_limit}", param="max_tokens")
    temperature = _number(body, "temperature", 0.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise bad_request("'top_p' must be above 0", param="top_p")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise bad_request("'seed' must be an integer", param="seed")
    return ChatRequest(
        messages, Sampling(temperature, top_p, seed), max_tokens, _stops(body.get("stop")), stream, include_usage
    )


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise bad_request(f"'stop' must be a non-empty string or a list of at most {MAX_STOPS} of them", param="stop")
    return tuple(stops)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _typed(body: dict, name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise bad_request(f"'{name}' must be a {'boolean' if kind is bool else 'JSON object'}", param=name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise bad_request(f"'{name}' must be a number from {low:g} to {high:g}", param=name)
    return float(value)
