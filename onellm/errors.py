"""The one error type for unreadable or malformed input files."""
from __future__ import annotations

from pathlib import Path


class BadInputError(ValueError):
    """A file that cannot become a model input; the message names the file and the problem.
    Training catches it to skip and count the sample; the CLI and demo show it as is."""

    def __init__(self, path: Path | str, problem: str, modality: str | None = None) -> None:
        self.path, self.problem, self.modality = str(path), problem, modality
        super().__init__(f"{path}: {modality + ': ' if modality else ''}{problem}")
