"""Natural Scenes Dataset: per-trial fMRI voxel vectors captioned with their stimulus's COCO captions.

The layout accepted:
- the captions: a CSV with an NSD stimulus id column (nsdId | nsd_id | stim_id | id) and
  either a `caption` column (several rows per id allowed) or a `cocoId` column looked up in
  COCO captions files (`coco_captions`), as in NSD's own `nsd_stim_info_merged.csv`; or a
  JSON object {"<nsd id>": caption or [captions]}. An optional `split` column gives the
  split; with `shared1000_test`, rows whose `shared1000` column is true become test.
- the fMRI: `<nsd id>.npy` or `<nsd id>_<trial>.npy` under the media root (the voxel vector
  [V] or [repetitions, V] of one subject's ROI, e.g. nsdgeneral), one sample per file."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from ...errors import BadInputError
from ..manifest import Sample
from .common import Media, load_json, need, parse_split, pick_column, progress, read_table

HELP = "NSD: stimulus-id -> caption CSV/JSON (or nsd_stim_info_merged.csv + COCO captions) over <nsd id>[_<trial>].npy"
MODALITY = "fmri"
ID_COLUMNS = ("nsdid", "nsd_id", "stim_id", "id")
TRIAL = re.compile(r"^(\d+)(?:_(\d+))?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--coco-captions",
        type=Path,
        action="append",
        default=[],
        help="COCO captions JSON for a table with cocoId (repeat for train and val)",
    )
    parser.add_argument("--shared1000-test", action="store_true", help="the shared1000 stimuli are the test split")


def samples(
    path: Path,
    media: Media,
    split: str | None = None,
    modality: str | None = None,
    coco_captions: list[Path] | None = None,
    shared1000_test: bool = False,
) -> Iterator[Sample]:
    if path.suffix.lower() == ".json":
        captions, splits = _from_json(path), {}
    else:
        captions, splits = _from_table(path, coco_captions or [], shared1000_test)
    if not media.root.is_dir():
        raise BadInputError(media.root, "no such folder of fMRI .npy files")
    trials = [(m, p) for p in sorted(media.root.rglob("*.npy")) if (m := TRIAL.match(p.stem))]
    used = set()
    for match, file in progress(trials, len(trials), f"nsd {media.root.name}"):
        stim = int(match.group(1))
        if stim not in captions:
            media.skip("fMRI file whose stimulus has no caption")
            continue
        used.add(stim)
        # A file that names splits decides each row's (and --split filters); else --split labels all.
        row_split = splits.get(stim, "train") if splits else split or "train"
        if split and row_split != split:
            continue
        name = file.relative_to(media.root).as_posix()
        sample_id = f"nsd-{stim}" + (f"-{match.group(2)}" if match.group(2) else "")
        if file.parent != media.root:  # per-subject folders: keep ids distinct
            sample_id += "-" + file.parent.relative_to(media.root).as_posix().replace("/", "-")
        yield Sample(
            id=sample_id,
            modality=modality or MODALITY,
            files=[media.relative(name)],
            caption=captions[stim][0],
            split=row_split,
            meta={"references": captions[stim], "nsd_id": stim},
        )
    for _ in set(captions) - used:
        media.skip("captioned stimulus without fMRI files")


def _stim_id(value: str, where: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise BadInputError(where, f"stimulus id {value!r} is not a number") from None


def _from_json(path: Path) -> dict[int, list[str]]:
    data = load_json(path)
    if not isinstance(data, dict):
        raise BadInputError(path, "expected an object {nsd id: caption or [captions]}")
    out = {}
    for key, value in data.items():
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BadInputError(path, f"[{key!r}]: expected a caption or a list of captions")
        out[_stim_id(key, f"{path}: key {key!r}")] = [t.strip() for t in texts]
    return out


def _from_table(
    path: Path, coco_files: list[Path], shared1000_test: bool
) -> tuple[dict[int, list[str]], dict[int, str]]:
    names, rows = read_table(path)
    lower = [n.lower() for n in names]
    id_col = pick_column(names, None, ID_COLUMNS, path, "NSD stimulus id")
    caption_col = lower.index("caption") if "caption" in lower else None
    coco_col = lower.index("cocoid") if "cocoid" in lower else None
    if caption_col is None and coco_col is None:
        raise BadInputError(f"{path}:1", "needs a 'caption' column or a 'cocoId' column (with --coco-captions)")
    if caption_col is None and not coco_files:
        raise BadInputError(f"{path}:1", "has cocoId but no caption column: give --coco-captions")
    coco = _coco_captions(coco_files) if caption_col is None else {}
    split_col = lower.index("split") if "split" in lower else None
    shared_col = lower.index("shared1000") if shared1000_test and "shared1000" in lower else None
    captions: dict[int, list[str]] = {}
    splits: dict[int, str] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) != len(names):
            raise BadInputError(where, f"{len(row)} fields, expected {len(names)}")
        stim = _stim_id(row[id_col], where)
        if caption_col is not None:
            captions.setdefault(stim, []).append(row[caption_col].strip())
        else:
            found = coco.get(_stim_id(row[coco_col], where))
            if found is None:
                raise BadInputError(where, f"cocoId {row[coco_col]} is in none of the COCO captions files given")
            captions[stim] = found
        if split_col is not None:
            splits[stim] = parse_split(row[split_col], where)
        if shared_col is not None and row[shared_col].strip().lower() in ("true", "1"):
            splits[stim] = "test"
    return captions, splits


def _coco_captions(files: list[Path]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for file in files:
        data = load_json(file)
        try:
            for i, ann in enumerate(need(data, "annotations", list, "top level")):
                out.setdefault(int(need(ann, "image_id", (int, str), f"annotations[{i}]")), []).append(
                    need(ann, "caption", str, f"annotations[{i}]").strip()
                )
        except ValueError as err:
            raise BadInputError(file, str(err)) from err
    return out
