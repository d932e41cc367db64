"""The one error type for unreadable or malformed input files."""
from __future__ import annotations

from pathlib import Path


class BadInputError(ValueError):
    """A file that cannot become a model input; the message names the file and the problem.
    Training catches it to skip and count the sample; the CLI and demo show it as is."""

    def __init__(self, path: Path | str, problem: str, modality: str | None = None) -> None:
        self.path, self.problem, self.modality = str(path), problem, modality
        super().__init__(f"{path}: {modality + ': ' if modality else ''}{problem}")


def describe(err: BaseException) -> str:
    """Any exception as one line for a user. A message that is a sentence (it has spaces) from
    a ValueError, OSError or KeyError reads well alone; anything else leads with its type,
    since a bare key or a decoder's terse message says little without it."""
    # KeyError's str is the repr of its argument: quotes around a sentence.
    text = str(err.args[0]) if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    text = " ".join(text.split())
    if isinstance(err, (ValueError, OSError, KeyError)) and " " in text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
