"""A folder of your own files, one sample per file of the modality's extensions.

The caption is the text file beside a file (`x.png` + `x.txt`) or, with `label_from_parent`,
its folder's name (ImageFolder: DIR/<label>/x.png). The split is the top-level folder's when
every top-level folder is named train/val/test (or validation, valid, dev, eval, testing);
else a hash of the file's path decides it, so a re-run gives every file the same split."""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from ...errors import BadInputError
from ...registry import get_modality, list_modalities
from ..manifest import Sample, split_modality
from .common import SPLIT_NAMES, Media, file_sample, progress

HELP = "a folder of your files: captions from x.txt beside x.png, or from the folder names (ImageFolder)"
DESCRIPTION = """\
Every file under DIR with one of the modality's extensions becomes a sample. Its caption is
the text file beside it (cat1.png + cat1.txt), or with --label-from-parent the name of its
folder (DIR/<label>/<file>, underscores read as spaces) through --caption-format; a file
with neither gets no caption (training needs one; `onellm data check` lists them). Top-level
folders train/ val/ test/ give the split; without them --val-fraction/--test-fraction pick
one by a hash of each file's path (the same on every run). Paths in the manifest are
relative to it; --media-root defaults to DIR.

  onellm data convert folder my_photos --modality image --label-from-parent \\
      --caption-format "a photo of a {label}" --val-fraction 0.1 --out my_photos/image.jsonl"""
MODALITY = None
MODALITY_HELP = "required: the folder's files are read by its extensions"
MEDIA_IS_INPUT = True  # --media-root defaults to the folder itself


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-from-parent",
        action="store_true",
        help="caption a file without x.txt by its folder's name (ImageFolder layout)",
    )
    parser.add_argument("--caption-format", default="{label}", help='caption from a label (default: "{label}")')
    parser.add_argument("--val-fraction", type=float, default=0.0, help="share of files for val, without split folders")
    parser.add_argument(
        "--test-fraction", type=float, default=0.0, help="share of files for test, without split folders"
    )


def samples(
    path: Path,
    media: Media,
    split: str | None = None,
    modality: str | None = None,
    label_from_parent: bool = False,
    caption_format: str = "{label}",
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
) -> Iterator[Sample]:
    if not modality:
        raise ValueError("a folder does not say its modality: give --modality")
    if not path.is_dir():
        raise BadInputError(path, "not a folder (the folder converter reads a folder of files)")
    # "video+audio": each video file is also read for its soundtrack; the first part's files count.
    spec = get_modality(split_modality(modality)[0])
    if spec.companions:  # which rgb image goes with which depth map is not in a folder's layout
        raise BadInputError(
            path,
            f"{modality} samples need companion files ({', '.join(spec.companions)}); "
            "list them in a table and use `onellm data convert tsv --companion-columns`",
        )
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction}: each >= 0, together < 1")
    try:
        caption_format.format(label="x")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"--caption-format {caption_format!r}: only {{label}} may stand in braces") from None
    path = path.absolute()
    files = _media_files(path, spec.name)
    split_folders = _split_folders([file.relative_to(path) for file, _ in files])
    if split_folders and (val_fraction or test_fraction):
        raise ValueError(f"has split folders ({', '.join(split_folders)}); --val-fraction/--test-fraction do not apply")
    named = bool(split_folders or val_fraction or test_fraction)
    for file, ext in progress(files, len(files), f"folder {path.name}"):
        relative = file.relative_to(path)
        if split_folders:
            row_split = SPLIT_NAMES[relative.parts[0].lower()]
        elif named:
            row_split = _hash_split(relative.as_posix(), val_fraction, test_fraction)
        else:
            row_split = split or "train"
        # Split folders or fractions decide each file's split (and --split filters); else --split labels all.
        if named and split and row_split != split:
            media.skip(f"not in the {split} split")
            continue
        caption, label = _caption(file, ext, relative, bool(split_folders), label_from_parent, caption_format)
        yield file_sample(
            modality,
            [media.relative(os.path.relpath(file, media.root))],
            id=relative.as_posix(),
            caption=caption,
            split=row_split,
            meta={"label": label} if label else {},
        )


def _media_files(path: Path, modality: str) -> list[tuple[Path, str]]:
    """(file, its extension) for the modality's files, sorted, hidden ones left out; a file
    another modality claims by a longer extension (x.depth.png in an image folder) is its."""
    own = get_modality(modality).extensions
    others = [e for m in list_modalities() if m != modality for e in get_modality(m).extensions]
    out = []
    for file in sorted(path.rglob("*")):
        name = file.name.lower()
        ext = max((e for e in own if name.endswith(e)), key=len, default=None)
        if ext is None or any(p.startswith(".") for p in file.relative_to(path).parts) or not file.is_file():
            continue
        if not any(len(e) > len(ext) and name.endswith(e) for e in others):
            out.append((file, ext))
    if not out:
        raise BadInputError(path, f"no {modality} files ({', '.join(own)}) under it")
    return out


def _split_folders(relatives: list[Path]) -> list[str]:
    """The top-level folders of the media files, when all are split names and no media file
    sits beside them (a class folder "train" among "cat" and "dog" is a label, not a split)."""
    tops = {r.parts[0] if len(r.parts) > 1 else None for r in relatives}
    if None not in tops and all(t.lower() in SPLIT_NAMES for t in tops):
        return sorted(tops)
    return []


def _hash_split(relative: str, val_fraction: float, test_fraction: float) -> str:
    # A hash of the path, not a random draw: adding files never moves the ones already split.
    u = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def _caption(
    file: Path, ext: str, relative: Path, split_folders: bool, label_from_parent: bool, caption_format: str
) -> tuple[str | None, str | None]:
    """(caption, label): the sidecar text first, else the folder name when asked for."""
    sidecar = file.with_name(file.name[: -len(ext)] + ".txt")
    text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
    label = None
    if label_from_parent:
        if len(relative.parts) < (3 if split_folders else 2):
            raise BadInputError(file, "no label folder above it (--label-from-parent expects DIR/<label>/<file>)")
        label = relative.parts[-2]
    caption = text or (caption_format.format(label=label.replace("_", " ")) if label else None)
    return caption, label
