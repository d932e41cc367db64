"""One manifest format for every modality: JSON Lines, one sample per line.

    {"id": "image-000001", "modality": "image", "files": ["image/000001.png"],
     "caption": "a red circle ...", "qa": [{"question": "...", "answer": "..."}],
     "conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}],
     "split": "train", "meta": {"sample_rate": 100}}

`files` are relative to the manifest's folder (or absolute); files[0] is the modality's own
file and the rest its companions (see `ModalitySpec.companions`). A file may also name a
member of a WebDataset-style tar shard as "shard-000.tar#member".

A sample with several inputs lists them under `inputs` instead of `modality`/`files`, each
with its modality, files and meta (merged over the sample's); the prompt gets one
placeholder run per input, in this order. A video and its own soundtrack are two inputs of
the same file:

    {"id": "av-000001", "inputs": [{"modality": "video", "files": ["av/000001.mp4"]},
                                   {"modality": "audio", "files": ["av/000001.mp4"]}],
     "caption": "a red circle moves left while a low tone pulses", "split": "test"}

Such a sample's `modality` is its inputs' modalities joined by "+" ("video+audio"), the name
a stage's dataset entry and an eval task use for it.

So `cat a/x.jsonl b/y.jsonl > all.jsonl` breaks every relative path of a manifest that sits
in another folder than all.jsonl: `onellm data merge a/x.jsonl b/y.jsonl --out all.jsonl`
rewrites them, as `write_manifest` does for any sample read from elsewhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
JOIN = "+"  # "video+audio": the modality of a sample with a video and an audio input


def joined_modality(modalities: Iterable[str]) -> str:
    return JOIN.join(modalities)


def split_modality(modality: str) -> list[str]:
    """The input modalities a (possibly joined) modality name stands for."""
    return modality.split(JOIN)


@dataclass(frozen=True)
class SampleInput:
    """One input of a sample, its files resolved against the manifest's folder."""

    modality: str
    paths: list[Path]
    meta: dict[str, Any]


@dataclass
class Sample:
    id: str
    modality: str
    files: list[str]
    caption: str | None = None
    qa: list[dict[str, str]] = field(default_factory=list)
    conversations: list[dict[str, str]] = field(default_factory=list)
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False, repr=False)
    # Several inputs ({modality, files, meta?} each); `files` then holds all their files once.
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def paths(self) -> list[Path]:
        """files resolved against the manifest's folder."""
        return self._resolve(self.files)

    def _resolve(self, files: list[str]) -> list[Path]:
        base = self.root or Path(".")
        return [base / f for f in files]  # an absolute f replaces base

    def input_list(self) -> list[SampleInput]:
        """The sample's inputs in prompt order: one for a single-input sample."""
        if not self.inputs:
            return [SampleInput(self.modality, self.paths(), self.meta)]
        return [
            SampleInput(i["modality"], self._resolve(i["files"]), {**self.meta, **i.get("meta", {})})
            for i in self.inputs
        ]

    def input_modalities(self) -> list[str]:
        return [i["modality"] for i in self.inputs] if self.inputs else [self.modality]

    def with_files(self, rename: dict[str, str]) -> dict[str, Any]:
        """The manifest row with every file name (of `files` and of each input) replaced
        through `rename`."""
        row = self.to_json()
        if self.inputs:
            row["inputs"] = [{**i, "files": [rename[f] for f in i["files"]]} for i in self.inputs]
        else:
            row["files"] = [rename[f] for f in self.files]
        return row

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("root")
        if self.inputs:  # modality and files follow from the inputs
            row.pop("modality")
            row.pop("files")
        return {k: v for k, v in row.items() if v not in (None, [], {})}


def _file_list(files: Any, where: str) -> list[str]:
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{where}: 'files' must be a non-empty list of paths")
    return files


def _inputs(row: dict[str, Any], where: str) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(joined modality, every file once, the inputs) of a row with `inputs`."""
    inputs = row["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise ValueError(f"{where}: 'inputs' must be a non-empty list of {{modality, files, meta?}}")
    parsed = []
    for n, item in enumerate(inputs):
        at = f"{where}: inputs[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("modality"), str) or "files" not in item:
            raise ValueError(f"{at} needs a 'modality' name and 'files'")
        unknown = set(item) - {"modality", "files", "meta"}
        if unknown:
            raise ValueError(f"{at}: unknown field(s) {sorted(unknown)}")
        if not isinstance(item.get("meta", {}), dict):
            raise ValueError(f"{at}: 'meta' must be an object")
        parsed.append({**item, "files": _file_list(item["files"], at)})
    modality = joined_modality(i["modality"] for i in parsed)
    if row.get("modality", modality) != modality:
        raise ValueError(
            f"{where}: 'modality' {row['modality']!r} does not match the inputs ({modality!r}); leave it out"
        )
    if "files" in row:
        raise ValueError(f"{where}: give 'files' inside each of 'inputs', not beside them")
    return modality, list(dict.fromkeys(f for i in parsed for f in i["files"])), parsed


def sample_from_json(row: dict[str, Any], root: Path | None = None, where: str = "") -> Sample:
    required = ("id", "inputs") if "inputs" in row else ("id", "modality", "files")
    missing = [k for k in required if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    if "inputs" in row:
        modality, files, inputs = _inputs(row, where)
        row = {**row, "modality": modality, "inputs": inputs}
    else:
        files = _file_list(row["files"], where)
    if row.get("split", "train") not in SPLITS:
        raise ValueError(f"{where}: split {row['split']!r} is not one of {SPLITS}")
    for key, kind, shape in (
        ("caption", str, "a string"),
        ("qa", list, "a list of {question, answer}"),
        ("conversations", list, "a list of {from, value}"),
        ("meta", dict, "an object"),
    ):
        if row.get(key) is not None and not isinstance(row[key], kind):
            raise ValueError(f"{where}: '{key}' must be {shape}, got {type(row[key]).__name__}")
    if not all(isinstance(q, dict) and {"question", "answer"} <= set(q) for q in row.get("qa") or []):
        raise ValueError(f"{where}: every 'qa' entry needs a question and an answer")
    known = {"id", "modality", "files", "caption", "qa", "conversations", "split", "meta", "inputs"}
    unknown = set(row) - known
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; extra facts belong in 'meta'")
    return Sample(**{**row, "files": files, "id": str(row["id"])}, root=root)


def read_manifest(path: Path | str) -> list[Sample]:
    """All samples of a .jsonl manifest; a malformed line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    return list(iter_manifest(path))


def iter_manifest(path: Path) -> Iterator[Sample]:
    root = path.resolve().parent
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield sample_from_json(row, root, where)


def write_manifest(path: Path | str, samples: Iterable[Sample | dict[str, Any]]) -> int:
    """Write atomically (temporary file + rename); returns the number of samples. A Sample
    read from a manifest (its `root` set) gets its files rewritten to reach the same files
    from `path`'s folder; other samples' and dicts' files are written as they are."""
    folder = Path(path).resolve().parent

    def row(s: Sample | dict[str, Any]) -> dict[str, Any]:
        if not isinstance(s, Sample):
            return s
        return s.with_files(dict(zip(s.files, relocated(s.files, s.root, folder)))) if s.root else s.to_json()

    return write_jsonl(path, map(row, samples))


def relocated(files: list[str], root: Path, folder: Path) -> list[str]:
    """`files` relative to `root`, rewritten relative to `folder`; absolute ones stay, and a
    tar member ("shard.tar#member") keeps its member part."""
    from .shards import SEPARATOR, split_shard_path  # here: shards builds on this module

    if root == folder:
        return list(files)
    out = []
    for file in files:
        inside = split_shard_path(file)
        path, suffix = (inside[0].as_posix(), SEPARATOR + inside[1]) if inside else (file, "")
        if not Path(path).is_absolute():
            path = Path(os.path.relpath(root / path, folder)).as_posix()
        out.append(path + suffix)
    return out


def write_jsonl(path: Path | str, rows: Iterable[dict[str, Any]]) -> int:
    """JSON Lines written atomically: a crash mid-write leaves any previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
