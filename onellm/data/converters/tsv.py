"""(path or URL, caption) tables, as LAION, CC3M, WebVid and WavCaps dumps ship them.

Nothing is downloaded here: a row whose media is a URL is skipped (and counted) unless
`url_map` names a table of (url, path) pairs giving its local copy, as img2dataset /
video2dataset outputs allow (see data_recipes/README.md)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from ...errors import BadInputError
from ..manifest import Sample
from .common import URL, Media, count_lines, pick_column, progress, read_table

HELP = "TSV/CSV of (path or url, caption) rows: LAION, CC3M, WebVid, WavCaps dumps"
MODALITY = None
MODALITY_HELP = "required: a table does not say"
PATH_COLUMNS = ("path", "filepath", "file", "image", "video", "audio")
URL_COLUMNS = ("url", "image_url", "video_url", "contenturl", "download_link")
CAPTION_COLUMNS = ("caption", "text", "title", "raw")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path-column", help=f"media column (default: the first of {'|'.join(PATH_COLUMNS + URL_COLUMNS)})")
    parser.add_argument("--caption-column", help=f"caption column (default: the first of {'|'.join(CAPTION_COLUMNS)})")
    parser.add_argument("--id-column", help="sample id column (default: <file stem>-<row number>)")
    parser.add_argument("--companion-columns", help="comma-separated columns of companion files (depth/normal: the rgb image)")
    parser.add_argument("--columns", help="comma-separated column names for a file without a header (CC3M: caption,url)")
    parser.add_argument("--delimiter", help="field separator (default: tab for .tsv, comma otherwise)")
    parser.add_argument("--url-map", type=Path, help="table of url,path pairs: local copies of URL rows, under --media-root")


def samples(path: Path, media: Media, split: str | None = None, modality: str | None = None,
            path_column: str | None = None, caption_column: str | None = None, id_column: str | None = None,
            companion_columns: str | None = None, columns: str | None = None, delimiter: str | None = None, url_map: Path | None = None) -> Iterator[Sample]:
    if not modality:
        raise ValueError("a table does not say its modality: give --modality")
    names, rows = read_table(path, delimiter, header=columns is None)
    if columns is not None:
        names = [c.strip() for c in columns.split(",")]
    media_col = pick_column(names, path_column, PATH_COLUMNS + URL_COLUMNS, path, "media path")
    caption_col = pick_column(names, caption_column, CAPTION_COLUMNS, path, "caption")
    id_col = pick_column(names, id_column, (), path, "id") if id_column else None
    companions = [pick_column(names, c.strip(), (), path, "companion") for c in (companion_columns or "").split(",") if c.strip()]
    local = _read_url_map(url_map, delimiter) if url_map else {}
    for line, row in progress(rows, count_lines(path), f"tsv {path.name}"):
        if len(row) != len(names):
            raise BadInputError(f"{path}:{line}", f"{len(row)} fields, expected {len(names)} ({', '.join(names)})")
        name, caption = row[media_col].strip(), row[caption_col].strip()
        if not name:
            raise BadInputError(f"{path}:{line}", f"empty {names[media_col]!r}")
        if not caption:
            media.skip("empty caption")
            continue
        if URL.match(name):
            if name not in local:
                media.skip("URL without a local copy (give --url-map)")
                continue
            name = local[name]
        files = media.files([name] + [row[c].strip() for c in companions])
        if files is None:
            continue
        sample_id = row[id_col].strip() if id_col is not None else f"{path.stem}-{line:09d}"
        yield Sample(id=sample_id, modality=modality, files=files, caption=caption, split=split or "train")


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
