"""Errors the CLI tells in one line: unreadable input files, and training stopped on a signal."""

from __future__ import annotations

from pathlib import Path


class BadInputError(ValueError):
    """A file that cannot become a model input; the message names the file and the problem.
    Training catches it to skip and count the sample; the CLI and demo show it as is."""

    def __init__(self, path: Path | str, problem: str, modality: str | None = None) -> None:
        self.path, self.problem, self.modality = str(path), problem, modality
        super().__init__(f"{path}: {modality + ': ' if modality else ''}{problem}")


# sysexits.h EX_TEMPFAIL, "a temporary failure; the user is invited to retry": training
# stopped on request and resumes where it stopped.
EXIT_INTERRUPTED = 75


class Interrupted(Exception):
    """Training stopped on a signal. `checkpoint`: the one to resume from, None when nothing
    was trained since the last one; the CLI adds the command that resumes, prints the
    message once (`rank_zero`) and exits with EXIT_INTERRUPTED."""

    def __init__(self, what: str, checkpoint: str | None, rank_zero: bool) -> None:
        self.what, self.checkpoint, self.rank_zero = what, checkpoint, rank_zero
        self.resume_command: str | None = None
        super().__init__(what)

    def __str__(self) -> str:
        saved = f"checkpoint {self.checkpoint}" if self.checkpoint else "nothing new to save"
        resume = f"; resume with: {self.resume_command}" if self.resume_command else ""
        return f"{self.what}; {saved}{resume}"


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
