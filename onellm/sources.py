"""A file held in memory (a member of a streamed shard), readable where loaders read paths.

Loaders are written against a small part of `pathlib.Path`: the name and its suffixes, `open`,
`read_bytes`, `is_file`, `stat().st_size`. `MemoryFile` offers exactly that over bytes, so a
sample streamed from a shard is decoded straight from memory, never through a temporary file.
Its `str()` is where the bytes came from ("shard-00003.bin#k.png"), which errors name."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import IO


class _NamedBytes(io.BytesIO):
    """Bytes as a binary file named where they came from: decoders that put the file in their
    messages (PIL, PyAV) then name it as they name a real file, not by an object's address."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name

    def __repr__(self) -> str:
        return repr(self.name)


class MemoryFile:
    def __init__(self, name: str, data: bytes, where: str | None = None) -> None:
        self._pure = PurePosixPath(name)
        self.data = data
        self.where = where or name

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def suffixes(self) -> list[str]:
        return self._pure.suffixes

    @property
    def stem(self) -> str:
        return self._pure.stem

    def open(
        self, mode: str = "r", encoding: str | None = None, errors: str | None = None, newline: str | None = None
    ) -> IO:
        """Text by default, as `Path.open`; "rb" for the bytes."""
        if any(c in mode for c in "wax+"):
            raise io.UnsupportedOperation(f"{self}: a file held in memory is read-only")
        raw = _NamedBytes(self.data, self.where)
        if "b" in mode:
            return raw
        return io.TextIOWrapper(raw, encoding=encoding or "utf-8", errors=errors, newline=newline)

    def read_bytes(self) -> bytes:
        return self.data

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return self.data.decode(encoding or "utf-8", errors or "strict")

    def is_file(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def exists(self) -> bool:
        return True

    def stat(self) -> SimpleNamespace:
        return SimpleNamespace(st_size=len(self.data))

    def __str__(self) -> str:
        return self.where

    def __repr__(self) -> str:
        return f"MemoryFile({self.where!r}, {len(self.data)} bytes)"


FileSource = Path | MemoryFile


def as_source(path: FileSource | str | os.PathLike) -> FileSource:
    """A MemoryFile as it is; anything else as a Path."""
    return path if isinstance(path, MemoryFile) else Path(path)


def readable(path: FileSource) -> str | IO[bytes]:
    """What decoders that take a file name or a binary file object (PyAV, PIL, numpy) should
    open: the real file's name, or the bytes as a file object."""
    return path.open("rb") if isinstance(path, MemoryFile) else str(path)


@contextmanager
def os_path(path: FileSource) -> Iterator[str]:
    """A name the operating system opens, for decoders that take nothing else (open3d reads
    only XYZ text from bytes): the real file's, or for bytes in memory an anonymous file in
    memory (Linux's memfd_create), which no file system lists and which goes when closed."""
    if not isinstance(path, MemoryFile):
        yield str(path)
        return
    if not hasattr(os, "memfd_create"):
        raise OSError(f"reading a {path.suffix} file held in memory needs os.memfd_create (Linux)")
    fd = os.memfd_create("onellm-memory-file", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(path.data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
