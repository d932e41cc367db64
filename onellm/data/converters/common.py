"""What every converter shares: media paths relative to the manifest, counts of what was
skipped or missing, and readers that name the file and line (or field) of bad input."""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...errors import BadInputError
from ..manifest import SPLITS, Sample, split_modality

URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
PROGRESS_FROM = 10_000  # rows; smaller files convert before a bar would be worth drawing


@dataclass
class Report:
    """What a conversion wrote and what it left out, by reason."""

    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)  # media checked with check_files and not found

    def summary(self) -> str:
        parts = [f"{self.written} samples written"]
        parts += [f"{n} skipped: {reason}" for reason, n in sorted(self.skipped.items())]
        if self.missing:
            parts.append(f"{len(self.missing)} dropped: media not found (first: {self.missing[0]})")
        return "; ".join(parts)


class Media:
    """Turns a media file's name under `root` into the manifest's relative path, checking on
    request that it exists (stat calls are slow on network storage, hence optional)."""

    def __init__(self, root: Path | str, manifest: Path | str, check_files: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self.base = Path(manifest).expanduser().absolute().parent
        self.check_files = check_files
        self.report = Report()
        # computed once: os.path.relpath per row dominated converting multi-million-row tables
        self._prefix = Path(os.path.relpath(self.root, self.base)).as_posix()

    def relative(self, name: str | Path) -> str:
        name = Path(name).as_posix()
        if self._prefix == "." or Path(name).is_absolute():
            return name
        return f"{self._prefix}/{name}"

    def files(self, names: list[str]) -> list[str] | None:
        """The manifest's `files` for these media names, or None (counted) when one is missing."""
        if self.check_files:
            for name in names:
                if not (self.root / name).is_file():
                    self.report.missing.append(str(self.root / name))
                    return None
        return [self.relative(n) for n in names]

    def skip(self, reason: str) -> None:
        self.report.skipped[reason] += 1


# What tables and folders call the three splits (Hugging Face says "validation", Kaggle "valid").
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "eval": "test",
}


def file_sample(modality: str, files: list[str], **fields: Any) -> Sample:
    """A sample of `files` read as `modality`; a joined modality ("video+audio": a video and
    its own soundtrack) reads the same files once per part, as that many inputs."""
    parts = split_modality(modality)
    if len(parts) == 1:
        return Sample(modality=modality, files=files, **fields)
    return Sample(
        modality=modality, files=files, inputs=[{"modality": m, "files": list(files)} for m in parts], **fields
    )


def split_option(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    return split


def parse_split(value: str, where: str) -> str:
    """train, val or test for a split name a dataset uses; anything else names `where`."""
    split = SPLIT_NAMES.get(value.strip().lower())
    if split is None:
        raise BadInputError(
            where,
            f"split {value!r} is not train, val or test "
            f"(nor one of {', '.join(n for n in SPLIT_NAMES if n not in SPLITS)})",
        )
    return split


def progress(items: Iterable[Any], total: int | None, desc: str) -> Iterable[Any]:
    return tqdm(
        items, total=total, desc=desc, unit="row", disable=total is not None and total < PROGRESS_FROM, leave=False
    )


def load_json(path: Path) -> Any:
    """A whole JSON file; a syntax error names its line and column."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadInputError(path, "no such file") from None
    except json.JSONDecodeError as err:
        raise BadInputError(f"{path}:{err.lineno}", f"not valid JSON ({err.msg}, column {err.colno})") from err
    except UnicodeDecodeError as err:
        raise BadInputError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def need(item: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """item[key] of the expected type, or an error naming where in the file it was."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
    if key not in item:
        raise ValueError(f"{where}: missing field {key!r}")
    value = item[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


def conversation(turns: Any, where: str, placeholders: Iterable[str] = ()) -> list[dict[str, str]]:
    """[{from, value}] turns checked, with media placeholders ("<image>") cut from the text."""
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: expected a non-empty list of turns")
    pattern = re.compile(r"\s*(?:" + "|".join(re.escape(p) for p in placeholders) + r")\s*") if placeholders else None
    out = []
    for i, turn in enumerate(turns):
        speaker = need(turn, "from", str, f"{where}[{i}]")
        value = need(turn, "value", str, f"{where}[{i}]")
        if pattern is not None:
            value = pattern.sub(" ", value).strip()
        out.append({"from": speaker, "value": value})
    return out


def read_table(
    path: Path, delimiter: str | None = None, header: bool = True
) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """A CSV/TSV file: (header or None, iterator of (line number, row)). The delimiter
    follows the extension (.tsv: tab) unless given."""
    if not path.is_file():
        raise BadInputError(path, "no such file")
    delim = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    f = path.open(encoding="utf-8", newline="")
    reader = csv.reader(f, delimiter=delim)
    names = None
    try:
        if header:
            names = next(reader, None)
            if names is None:
                f.close()
                raise BadInputError(path, "empty file: expected a header row")
            names = [n.strip().lstrip("\ufeff") for n in names]
    except (csv.Error, UnicodeDecodeError) as err:
        f.close()
        raise BadInputError(f"{path}:1", f"unreadable header ({err})") from err

    def rows() -> Iterator[tuple[int, list[str]]]:
        with f:
            try:
                for row in reader:
                    if row and any(cell.strip() for cell in row):
                        yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as err:
                raise BadInputError(f"{path}:{reader.line_num + 1}", f"unreadable row ({err})") from err

    return names, rows()


def count_lines(path: Path) -> int:
    """Rows for the progress bar, counted by bytes (fast even on multi-GB dumps)."""
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def pick_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path, role: str) -> int:
    """The index of the column named `wanted`, or else of the first of `candidates` present."""
    index = find_column(names, wanted, candidates, path, role)
    if index is None:
        raise BadInputError(
            f"{path}:1",
            f"no {role} column: expected one of {', '.join(candidates)} "
            f"(columns: {', '.join(names)}); name it with an option",
        )
    return index


def find_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path, role: str) -> int | None:
    """As pick_column, for an optional column: None when no candidate is present (a column
    named by an option must still exist)."""
    lower = [n.lower() for n in names]
    if wanted is not None:
        if wanted.lower() not in lower:
            raise BadInputError(f"{path}:1", f"no {role} column {wanted!r} (columns: {', '.join(names)})")
        return lower.index(wanted.lower())
    return next((lower.index(name) for name in candidates if name in lower), None)
