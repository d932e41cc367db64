"""Errors a client sees, in the OpenAI error format, with nothing of the server in them."""

from __future__ import annotations

import re
from typing import Any

# Anything that looks like an absolute path of two or more parts: a decoder or a plugin's
# loader may name a server file (a library's source, a temporary file) in its message.
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)+[\w.@+-]*")


class APIError(Exception):
    """An error answered as `{"error": {"message", "type", "param", "code"}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": scrub(self.message), "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def scrub(message: str) -> str:
    """The message with server paths replaced and its length bounded."""
    text = _SERVER_PATH.sub("<path>", " ".join(message.split()))
    return text if len(text) <= 1000 else text[:997] + "..."
