"""A table of your own files: one row per file with its path and caption, optionally a
question/answer pair and its split, for any modality. CSV, TSV or JSON Lines (one object per
line with those keys); web dumps (LAION, CC3M, WebVid, WavCaps) are such tables too.

Nothing is downloaded here: a row whose media is a URL is skipped (and counted) unless
`url_map` names a table of (url, path) pairs giving its local copy, as img2dataset /
video2dataset outputs allow (see data_recipes/README.md)."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

from ...errors import BadInputError
from ...registry import get_modality
from ..manifest import Sample, split_modality
from .common import URL, Media, count_lines, file_sample, find_column, parse_split, pick_column, progress, read_table

HELP = "a table of your files (path + caption, optional question/answer and split): CSV, TSV, JSONL; also web dumps"
DESCRIPTION = """\
A table of your own files, one row per file, for any modality:

  path,caption,split
  photos/cat.png,a cat on a sofa,train
  clips/talk01.wav,a man reads a poem,validation

CSV, TSV (.tsv: tab) or JSON Lines ({"path": ..., "caption": ...} per line). Paths are
relative to --media-root. Optional columns: question + answer (a QA pair; such a row needs
no caption), split (train/val/test; also validation, valid, dev, eval, testing), id.
With a split column, --split keeps only that split's rows; without one, --split labels all.
Rows whose file is not of --modality by its extension are skipped and counted, so a table
of images and audio clips converts once per modality.
LAION, CC3M, WebVid and WavCaps dumps are such tables (URL rows need --url-map).

  onellm data convert tsv captions.csv --modality image --media-root my_data --out my_data/image.jsonl"""
MODALITY = None
MODALITY_HELP = "required: a table does not say"
PATH_COLUMNS = ("path", "filepath", "file", "filename", "file_name", "image", "video", "audio")
URL_COLUMNS = ("url", "image_url", "video_url", "contenturl", "download_link")
CAPTION_COLUMNS = ("caption", "text", "title", "raw")
SPLIT_COLUMNS = ("split", "set", "subset")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--path-column", help=f"media column (default: the first of {'|'.join(PATH_COLUMNS + URL_COLUMNS)})"
    )
    parser.add_argument("--caption-column", help=f"caption column (default: the first of {'|'.join(CAPTION_COLUMNS)})")
    parser.add_argument("--question-column", help="question column of an optional QA pair (default: question)")
    parser.add_argument("--answer-column", help="answer column of an optional QA pair (default: answer)")
    parser.add_argument(
        "--split-column", help=f"each row's split (default: the first of {'|'.join(SPLIT_COLUMNS)}, if any)"
    )
    parser.add_argument("--id-column", help="sample id column (default: <file stem>-<row number>)")
    parser.add_argument(
        "--companion-columns", help="comma-separated columns of companion files (depth/normal: the rgb image)"
    )
    parser.add_argument(
        "--columns", help="comma-separated column names for a file without a header (CC3M: caption,url)"
    )
    parser.add_argument("--delimiter", help="field separator (default: tab for .tsv, comma otherwise)")
    parser.add_argument(
        "--url-map", type=Path, help="table of url,path pairs: local copies of URL rows, under --media-root"
    )
    parser.add_argument(
        "--any-extension",
        action="store_true",
        help="keep rows whatever their file's extension (a depth map saved as plain .png)",
    )


def samples(
    path: Path,
    media: Media,
    split: str | None = None,
    modality: str | None = None,
    path_column: str | None = None,
    caption_column: str | None = None,
    question_column: str | None = None,
    answer_column: str | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    companion_columns: str | None = None,
    columns: str | None = None,
    delimiter: str | None = None,
    url_map: Path | None = None,
    any_extension: bool = False,
) -> Iterator[Sample]:
    if not modality:
        raise ValueError("a table does not say its modality: give --modality")
    # A table may list several modalities' files: each conversion keeps its own.
    # "video+audio": each video is also read for its soundtrack; the first part's extensions count.
    extensions = () if any_extension else get_modality(split_modality(modality)[0]).extensions
    if path.suffix.lower() in JSONL_SUFFIXES:
        names, rows = read_jsonl_table(path)
    else:
        names, rows = read_table(path, delimiter, header=columns is None)
    if columns is not None:
        names = [c.strip() for c in columns.split(",")]
    media_col = pick_column(names, path_column, PATH_COLUMNS + URL_COLUMNS, path, "media path")
    question_col = find_column(names, question_column, ("question",), path, "question")
    answer_col = find_column(names, answer_column, ("answer",), path, "answer")
    if (question_col is None) != (answer_col is None):
        raise BadInputError(f"{path}:1", "a question column needs an answer column and the other way round")
    # A QA table may have no caption column; then every row needs its QA pair.
    caption_col = (find_column if question_col is not None else pick_column)(
        names, caption_column, CAPTION_COLUMNS, path, "caption"
    )
    split_col = find_column(names, split_column, SPLIT_COLUMNS, path, "split")
    id_col = pick_column(names, id_column, (), path, "id") if id_column else None
    companions = [
        pick_column(names, c.strip(), (), path, "companion") for c in (companion_columns or "").split(",") if c.strip()
    ]
    local = _read_url_map(url_map, delimiter) if url_map else {}
    for line, row in progress(rows, count_lines(path), f"tsv {path.name}"):
        where = f"{path}:{line}"
        if len(row) != len(names):
            raise BadInputError(where, f"{len(row)} fields, expected {len(names)} ({', '.join(names)})")
        name = row[media_col].strip()
        if not name:
            raise BadInputError(where, f"empty {names[media_col]!r}")
        # A table that names splits decides each row's (and --split filters); else --split labels all.
        row_split = parse_split(row[split_col], where) if split_col is not None else split or "train"
        if split_col is not None and split and row_split != split:
            media.skip(f"not in the {split} split")
            continue
        caption = row[caption_col].strip() if caption_col is not None else ""
        qa = _qa(row, question_col, answer_col, where)
        if not caption and not qa:
            media.skip("empty caption" if question_col is None else "empty caption and no question/answer")
            continue
        if URL.match(name):
            if name not in local:
                media.skip("URL without a local copy (give --url-map)")
                continue
            name = local[name]
        if extensions and not name.lower().endswith(extensions):
            media.skip(f"file extension not {modality}'s ({', '.join(extensions)}; --any-extension keeps it)")
            continue
        files = media.files([name] + [row[c].strip() for c in companions])
        if files is None:
            continue
        sample_id = row[id_col].strip() if id_col is not None else f"{path.stem}-{line:09d}"
        yield file_sample(modality, files, id=sample_id, caption=caption or None, qa=qa, split=row_split)


def _qa(row: list[str], question_col: int | None, answer_col: int | None, where: str) -> list[dict[str, str]]:
    if question_col is None or answer_col is None:
        return []
    question, answer = row[question_col].strip(), row[answer_col].strip()
    if bool(question) != bool(answer):
        raise BadInputError(where, "a question without an answer (or an answer without a question)")
    return [{"question": question, "answer": answer}] if question else []


def read_jsonl_table(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """A JSON Lines table as read_table gives a CSV: the first object's keys are the columns;
    a later object may leave some out (empty cells) but may not add any."""
    objects = _objects(path)
    first = next(objects, None)
    if first is None:
        raise BadInputError(path, "empty file: expected one JSON object per line")
    names = list(first[1])

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, item in itertools.chain([first], objects):
            extra = set(item) - set(names)
            if extra:
                raise BadInputError(
                    f"{path}:{number}", f"key(s) {sorted(extra)} not in the first line's ({', '.join(names)})"
                )
            cells = [item.get(n) for n in names]
            if any(isinstance(c, (list, dict)) for c in cells):
                raise BadInputError(f"{path}:{number}", "values must be strings or numbers, one per key")
            yield number, ["" if c is None else str(c) for c in cells]

    return names, rows()


def _objects(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise BadInputError(f"{path}:{number}", f"not valid JSON ({err.msg})") from err
            if not isinstance(item, dict):
                raise BadInputError(f"{path}:{number}", f"expected a JSON object, got {type(item).__name__}")
            yield number, item


def _read_url_map(path: Path, delimiter: str | None) -> dict[str, str]:
    names, rows = read_table(path, delimiter)
    url_col = pick_column(names, None, URL_COLUMNS, path, "url")
    path_col = pick_column(names, None, PATH_COLUMNS, path, "path")
    out = {}
    for line, row in rows:
        if len(row) != len(names):
            raise BadInputError(f"{path}:{line}", f"{len(row)} fields, expected {len(names)}")
        out[row[url_col].strip()] = row[path_col].strip()
    return out
