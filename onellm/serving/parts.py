"""Content parts -> the files of one model input, held in memory (MemoryFile), so that the
modality's own loader decodes them and nothing lands where a client could name a path.

Which modality a standard part carries comes from the registry (`ModalitySpec.openai_parts`);
every modality, a plugin's too, is also reachable through the server's own part:

    {"type": "onellm_input", "onellm_input": {"modality": "point", "data": "<base64>",
     "format": "npy", "companions": [{"data": "<base64>", "format": "png"}], "meta": {...}}}
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..registry import get_modality
from ..sources import MemoryFile
from .errors import APIError, bad_request

ONELLM_PART = "onellm_input"
_FORMAT = re.compile(r"[a-z0-9]{1,8}")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)", re.DOTALL)
# What mimetypes does not know on every system, or guesses unhelpfully (.jpe for JPEG).
_MIME_FORMATS = {
    "image/jpeg": "jpg",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "video/mp4": "mp4",
    "application/x-npy": "npy",
}


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from and how large each file may be."""

    max_file_bytes: int
    allowed_dir: Path | None = None
    allow_remote: bool = False
    remote_timeout_s: float = 10.0


@dataclass
class Upload:
    """One model input: `files[0]` its own file, then its companions; `param` names the part."""

    modality: str
    files: list[MemoryFile]
    param: str
    meta: dict[str, Any] = field(default_factory=dict)


def part_modalities(modalities: list[str]) -> dict[str, str]:
    """Standard part type -> the model's modality that takes it (from the registry). A part
    type two of the model's modalities claim is left to `onellm_input`."""
    claims: dict[str, list[str]] = {}
    for name in modalities:
        for part in get_modality(name).openai_parts:
            claims.setdefault(part, []).append(name)
    return {part: names[0] for part, names in claims.items() if len(names) == 1}


def formats(modality: str, modalities: list[str]) -> set[str]:
    """The file formats (last extension) a modality's input may come in: its own extensions,
    those of the modalities whose files hold it as a stream (a video for its soundtrack), and
    .npy (an array of the input's shape, which load_input always takes)."""
    holders = [m for m in modalities if modality in get_modality(m).streams]
    extensions = [e for m in [modality, *holders] for e in get_modality(m).extensions]
    return {e.rsplit(".", 1)[-1] for e in extensions} | {"npy"}


def read_part(part: dict[str, Any], param: str, modalities: list[str], policy: MediaPolicy) -> Upload:
    """A non-text part as an Upload; APIError (4xx) naming the part for anything wrong."""
    kind = part.get("type")
    payload = part.get(kind)
    if not isinstance(payload, dict):
        raise bad_request(f"{param}: a {kind!r} part needs a {kind!r} object", param=param)
    if kind == ONELLM_PART:
        return _onellm_part(payload, param, modalities, policy)
    by_part = part_modalities(modalities)
    if kind not in by_part:
        known = ", ".join(sorted({"text", ONELLM_PART, *by_part}))
        raise bad_request(
            f"{param}: unknown content part type {kind!r}; this model takes {known}",
            param=f"{param}.type",
            code="unknown_part_type",
        )
    modality = by_part[kind]
    if kind.endswith("_url"):
        file = _from_url(payload.get("url"), param, policy)
    else:
        file = _from_data(payload, param, policy)
    _check_format(file, modality, modalities, param)
    return Upload(modality, [file], param)


def _onellm_part(payload: dict[str, Any], param: str, modalities: list[str], policy: MediaPolicy) -> Upload:
    modality = payload.get("modality")
    if not isinstance(modality, str) or modality not in modalities:
        raise bad_request(
            f"{param}: unknown modality {modality!r}; this model takes {', '.join(modalities)}",
            param=f"{param}.modality",
            code="unknown_modality",
        )
    meta = payload.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, (str, int, float, bool)) for v in meta.values()):
        raise bad_request(f"{param}: 'meta' must be an object of numbers, strings and booleans", param=f"{param}.meta")
    companions = payload.get("companions", [])
    wanted = get_modality(modality).companions
    if not isinstance(companions, list) or len(companions) > len(wanted):
        raise bad_request(
            f"{param}: {modality} takes at most {len(wanted)} companion file(s)"
            f"{' (' + ', '.join(wanted) + ')' if wanted else ''}",
            param=f"{param}.companions",
        )
    file = _from_data(payload, param, policy)
    _check_format(file, modality, modalities, param)
    files = [file]
    for n, companion in enumerate(companions):
        where = f"{param}.companions[{n}]"
        if not isinstance(companion, dict):
            raise bad_request(f"{where}: a companion is an object with 'data' and 'format'", param=where)
        files.append(_from_data(companion, where, policy))
    return Upload(modality, files, param, dict(meta))


def _check_format(file: MemoryFile, modality: str, modalities: list[str], param: str) -> None:
    taken = formats(modality, modalities)
    if file.suffix[1:] not in taken:
        raise bad_request(
            f"{param}: {modality} input cannot be a {file.suffix[1:] or 'file without a format'}; "
            f"it takes {', '.join(sorted(taken))}",
            param=param,
            code="unsupported_format",
        )


def _from_data(payload: dict[str, Any], param: str, policy: MediaPolicy) -> MemoryFile:
    fmt = payload.get("format")
    if not isinstance(fmt, str) or not _FORMAT.fullmatch(fmt.lower()):
        raise bad_request(f"{param}: 'format' must be a file extension such as wav or npy", param=f"{param}.format")
    return _memory_file(_decode_base64(payload.get("data"), param, policy), fmt.lower(), param)


def _decode_base64(data: Any, param: str, policy: MediaPolicy) -> bytes:
    if not isinstance(data, str) or not data:
        raise bad_request(f"{param}: 'data' must be a non-empty base64 string", param=f"{param}.data")
    if len(data) * 3 // 4 > policy.max_file_bytes:  # before decoding it
        raise _too_large(param, policy)
    data = "".join(data.split())  # base64 wrapped in lines, as `base64` writes it by default
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            f"{param}: 'data' is not valid base64", param=f"{param}.data", code="invalid_base64"
        ) from None


def _from_url(url: Any, param: str, policy: MediaPolicy) -> MemoryFile:
    if not isinstance(url, str) or not url:
        raise bad_request(f"{param}: 'url' must be a non-empty string", param=f"{param}.url")
    if url.startswith("data:"):
        match = _DATA_URL.fullmatch(url)
        if not match:
            raise bad_request(
                f"{param}: a data URL must read data:<type>;base64,<data>", param=f"{param}.url", code="invalid_url"
            )
        return _memory_file(_decode_base64(match.group(3), param, policy), _mime_format(match.group(1), param), param)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _local_file(Path(unquote(parsed.path)), param, policy)
    if parsed.scheme in ("http", "https"):
        return _remote_file(url, param, policy)
    raise bad_request(
        f"{param}: the url must be a data:, file: or http(s): URL", param=f"{param}.url", code="invalid_url"
    )


def _mime_format(mime: str | None, param: str) -> str:
    fmt = _MIME_FORMATS.get(mime or "") or (mimetypes.guess_extension(mime or "") or ".")[1:]
    if not _FORMAT.fullmatch(fmt):
        raise bad_request(
            f"{param}: unknown media type {mime!r} in the data URL", param=f"{param}.url", code="unsupported_format"
        )
    return fmt


def _local_file(path: Path, param: str, policy: MediaPolicy) -> MemoryFile:
    # The client's path is never echoed: whether a file outside the allowed folder exists
    # is none of its business.
    refused = APIError(
        403,
        f"{param}: local files are read only from the server's --allowed-dir",
        type="permission_error",
        param=f"{param}.url",
        code="local_file_refused",
    )
    if policy.allowed_dir is None:
        raise refused
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(policy.allowed_dir.resolve()):
            raise refused
        if not resolved.is_file():
            raise bad_request(f"{param}: no such file under the allowed folder", param=f"{param}.url", code="not_found")
        if resolved.stat().st_size > policy.max_file_bytes:
            raise _too_large(param, policy)
        data = resolved.read_bytes()
    except (OSError, ValueError) as err:  # a NUL in the path, a file that cannot be read
        raise bad_request(
            f"{param}: the file cannot be read ({type(err).__name__})", param=f"{param}.url", code="unreadable_file"
        ) from None
    return _memory_file(data, resolved.suffix[1:].lower(), param)


def _remote_file(url: str, param: str, policy: MediaPolicy) -> MemoryFile:
    if not policy.allow_remote:
        raise APIError(
            403,
            f"{param}: this server fetches no remote media (start it with --allow-remote-media)",
            type="permission_error",
            param=f"{param}.url",
            code="remote_media_refused",
        )
    import httpx

    try:
        with httpx.stream("GET", url, timeout=policy.remote_timeout_s, follow_redirects=True) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > policy.max_file_bytes:
                    raise _too_large(param, policy)
            mime = response.headers.get("content-type", "").split(";")[0].strip()
    except httpx.HTTPError as err:
        raise bad_request(
            f"{param}: could not fetch the url ({type(err).__name__})", param=f"{param}.url", code="fetch_failed"
        ) from None
    suffix = Path(urlparse(url).path).suffix[1:].lower()
    return _memory_file(bytes(data), suffix if _FORMAT.fullmatch(suffix) else _mime_format(mime, param), param)


def _memory_file(data: bytes, fmt: str, param: str) -> MemoryFile:
    # The name carries only the format, for the loader; errors name the part.
    return MemoryFile(f"upload.{fmt}", data, where=f"{param} ({fmt})")


def _too_large(param: str, policy: MediaPolicy) -> APIError:
    return APIError(
        413,
        f"{param}: the file is over the {policy.max_file_bytes / 2**20:g} MiB limit per file",
        param=param,
        code="media_too_large",
    )
