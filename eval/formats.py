"""Readers for the benchmarks' own annotation files, as their authors publish them.

Each reader takes the data root given on the command line and looks for the annotation
file there or in the sub-folders the benchmark's archive (or OneLLM's eval scripts) use;
media paths resolve against the same places. Layouts accepted:

coco-karpathy-test   dataset_coco.json (Karpathy split): images[].split == "test",
                     images at <root>/<filepath>/<filename> (e.g. val2014/COCO_val2014_...jpg),
                     references images[].sentences[].raw
clotho-caption       clotho_captions_evaluation.csv (file_name, caption_1..caption_5),
                     audio in evaluation/ (Clotho v2's archive) beside the CSV
msvd-qa              test_qa.json: a list of {id?, video_id | video, question, answer}; the
                     video is <video>.* or, with youtube_mapping.txt, vid<video_id> mapped to
                     its YouTube clip name; videos in YouTubeClips/ or videos/
pointllm-caption     PointLLM_brief_description_val_200_GT.json: a list of {object_id,
                     conversations: [{from: human, ...}, {from: gpt, value: caption}, ...]}
                     (OneLLM's {object_id: caption} dict works too); points in 8192_npy/ or
                     objaverse_data/ as <object_id>_8192.npy
ego4d-imu-caption    imu_caption_test.json, nsd-fmri-caption fmri_caption_test.json; either
nsd-fmri-caption     the COCO-caption layout OneLLM's scripts read ({images: [{id, file_name,
                     ...}], annotations: [{image_id, caption}]}, as imu_2000_cococap.json and
                     fmri_eval_cococap.json) or a plain list of {id, file?, caption | captions};
                     a missing file is <id>.npy; files resolve against the JSON's folder and
                     its imu/ or fmri/ sub-folder; other keys of an entry reach the loader
                     as meta (e.g. Ego4D's video_uid, window_start, window_end)
music-avqa-test      avqa-test.json as published (onellm/data/converters/musicavqa.py); one
                     item per question, its id the question_id; videos <video_id>.mp4 in
                     MUSIC-AVQA-videos/ or videos/ (or the real and synthetic video folders
                     side by side), each asked as a video and its soundtrack
avsd-test            lbl_test_set4DSTC7-AVSD.json (else test_set4DSTC7-AVSD.json, whose hidden
                     last answers are left out, or test_set4DSTC8-AVSD.json); one item per
                     dialog turn, id "avsd-<image_id>#<turn>", the question alone (no
                     history); Charades videos <image_id>.mp4 in Charades_v1_480/ or videos/
valor32k-test        desc_test.json ({video_id, desc}); one caption item per video, id the
                     video_id, scored against all its descriptions; videos in videos/
synth-*, manifest-*  a JSON Lines manifest (onellm/data/manifest.py): <root>/<modality>.jsonl
                     for the synthetic world, any file for `--manifest`; one split's samples
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from onellm.errors import BadInputError

from .items import EvalItem, caption_item, qa_item

if TYPE_CHECKING:
    from onellm.data.manifest import Sample

VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")


def find_file(root: Path, candidates: list[str]) -> Path:
    """The first candidate (relative to root) that exists, else an error listing them all."""
    for name in candidates:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"{root}: annotation file not found (looked for {tried})")


def media_dir(bases: list[Path], candidates: list[str]) -> Path:
    """The first existing folder among bases x candidates; the first base when none exists, so
    that the missing files are reported one by one as skipped samples."""
    for base in bases:
        for name in candidates:
            if (base / name).is_dir():
                return base / name
    return bases[0]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(path, f"not valid JSON ({err})") from err


def _rows(path: Path, data: Any, key: str | None = None) -> list[dict[str, Any]]:
    rows = data.get(key) if key and isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        where = f"'{key}'" if key else "the top level"
        raise BadInputError(path, f"expected a list of objects at {where}")
    return rows


def converted(converter: ModuleType, path: Path, media: Path, split: str = "test") -> list[Sample]:
    """The samples `onellm data convert` would write from `path`, with their media names
    relative to `media`, which becomes their root: one parser for both commands."""
    from onellm.data.converters.common import Media

    try:
        found = converter.samples(path, Media(media, media / "items.jsonl"), split=split)
        return [replace(s, root=media) for s in found]
    except BadInputError:
        raise
    except ValueError as err:  # the converter names the entry; this names the file too
        raise BadInputError(path, str(err)) from err


def question_items(samples: list[Sample], id_of: Callable[[Sample, int, dict[str, Any]], str]) -> list[EvalItem]:
    """One QA item per qa pair of each sample; `id_of(sample, n, qa)` names it."""
    return [EvalItem.of(s, id=id_of(s, n, qa), qa=[qa]) for s in samples for n, qa in enumerate(s.qa)]


def read_coco_karpathy(root: Path, split: str = "test") -> list[EvalItem]:
    """Read by the COCO converter (onellm/data/converters/coco.py); the id is the COCO id."""
    from onellm.data.converters import coco

    path = find_file(root, ["dataset_coco.json", "coco/dataset_coco.json", "annotations/dataset_coco.json"])
    base = path.parent.parent if path.parent.name in ("coco", "annotations") else path.parent
    images = media_dir([base, base / "coco"], ["."])
    return [EvalItem.of(s, id=str(s.meta["image_id"])) for s in converted(coco, path, images, split)]


def read_music_avqa(root: Path) -> list[EvalItem]:
    """Read by the MUSIC-AVQA converter: one item per question of avqa-test.json."""
    from onellm.data.converters import musicavqa

    name = "avqa-test.json"
    path = find_file(root, [name, f"json/{name}", f"MUSIC-AVQA/{name}", f"MUSIC-AVQA/json/{name}", f"data/json/{name}"])
    videos = media_dir([path.parent, root], ["MUSIC-AVQA-videos", "videos", "video"])
    return question_items(
        converted(musicavqa, path, videos),
        lambda s, n, qa: str(qa["question_id"]) if "question_id" in qa else f"{s.id}#{n}",
    )


def read_avsd(root: Path) -> list[EvalItem]:
    """Read by the AVSD converter: one item per answered dialog turn."""
    from onellm.data.converters import avsd

    names = ["lbl_test_set4DSTC7-AVSD.json", "test_set4DSTC7-AVSD.json", "test_set4DSTC8-AVSD.json"]
    path = find_file(root, names + [f"{folder}/{n}" for folder in ("avsd", "data") for n in names])
    videos = media_dir([path.parent, root], ["Charades_v1_480", "Charades_v1", "videos", "video"])
    return question_items(converted(avsd, path, videos), lambda s, n, qa: f"{s.id}#{qa.get('turn', n)}")


def read_valor(root: Path) -> list[EvalItem]:
    """Read by the VALOR converter: one caption item per video of desc_test.json."""
    from onellm.data.converters import valor

    name = "desc_test.json"
    path = find_file(root, [name] + [f"{folder}/{name}" for folder in ("VALOR-32K", "valor32k", "annotations")])
    videos = media_dir([path.parent, root], ["videos", "video", "VALOR-32K-videos"])
    return [EvalItem.of(s, id=str(s.meta["video_id"])) for s in converted(valor, path, videos)]


def read_clotho(root: Path) -> list[EvalItem]:
    """Read by the Clotho converter (onellm/data/converters/clotho.py); the id is the clip's
    file name, the references its five captions."""
    from onellm.data.converters import clotho

    path = find_file(root, ["clotho_captions_evaluation.csv", "clotho/clotho_captions_evaluation.csv"])
    audio = media_dir([path.parent], ["evaluation", "clotho_audio_evaluation/evaluation", "audio"])
    return [EvalItem.of(s, id=s.files[0]) for s in converted(clotho, path, audio)]


def read_msvd_qa(root: Path) -> list[EvalItem]:
    path = find_file(root, ["test_qa.json", "MSVD-QA/test_qa.json", "msvd/test_qa.json", "MSVD/MSVD-QA/test_qa.json"])
    bases = [path.parent, path.parent.parent]
    videos = media_dir(bases, ["YouTubeClips", "videos", "video"])
    mapping_file = path.parent / "youtube_mapping.txt"
    mapping = {}
    if mapping_file.is_file():
        # lines "<youtube clip name> vid<N>"
        pairs = (line.split() for line in mapping_file.read_text().splitlines() if line.strip())
        mapping = {p[1]: p[0] for p in pairs if len(p) == 2}
    items = []
    for n, row in enumerate(_rows(path, _load_json(path))):
        if "question" not in row or "answer" not in row or not ({"video", "video_id"} & set(row)):
            raise BadInputError(path, f"entry {n} lacks question, answer or video / video_id")
        name = str(row["video"]) if "video" in row else mapping.get(f"vid{row['video_id']}", str(row["video_id"]))
        items.append(
            qa_item(
                str(row.get("id", row.get("question_id", n))),
                "video",
                [_video_file(videos, name)],
                str(row["question"]),
                str(row["answer"]),
            )
        )
    return items


def _video_file(folder: Path, name: str) -> Path:
    if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
        return folder / name
    for ext in VIDEO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return folder / f"{name}.avi"  # MSVD's clips; reported as missing when it is not there


def read_pointllm(root: Path) -> list[EvalItem]:
    """Read by the PointLLM converter (onellm/data/converters/pointllm.py); the id is the
    object's, the references its gpt answers (or, in OneLLM's own file, its captions)."""
    from onellm.data.converters import pointllm

    names = ["PointLLM_brief_description_val_200_GT.json", "pointllm_test.json"]
    path = find_file(root, names + [f"anno_data/{n}" for n in names] + [f"pointllm/{n}" for n in names])
    points = media_dir([path.parent, path.parent.parent], ["8192_npy", "objaverse_data", "pointllm/8192_npy"])
    items = []
    for s in converted(pointllm, path, points):
        answers = [t["value"] for t in s.conversations if t["from"] == "gpt"]
        refs = s.meta.get("references") or answers
        if not refs:
            raise BadInputError(path, f"{s.id}: no gpt turn to score against")
        uid = Path(s.files[0]).name.removesuffix(pointllm.CLOUD_NAME.format(uid=""))
        items.append(EvalItem.of(s, id=uid, caption=refs[0], conversations=[], meta={**s.meta, "references": refs}))
    return items


def read_caption_json(root: Path, names: list[str], modality: str, folder: str) -> list[EvalItem]:
    """The small caption layouts of the IMU and fMRI benchmarks (see the module docstring)."""
    path = find_file(root, names + [f"{folder}/{n}" for n in names])
    files = media_dir([path.parent], [folder, "."])
    data = _load_json(path)
    if isinstance(data, dict) and "images" in data:
        captions: dict[str, list[str]] = {}
        for ann in _rows(path, data, "annotations"):
            captions.setdefault(str(ann.get("image_id")), []).append(str(ann.get("caption", "")).strip())
        rows = [{**img, "captions": captions.get(str(img.get("id")), [])} for img in _rows(path, data, "images")]
    else:
        rows = _rows(path, data)
    items = []
    for n, row in enumerate(rows):
        refs = row.get("captions", row.get("caption"))
        refs = [refs] if isinstance(refs, str) else [str(r).strip() for r in refs or []]
        key = row.get("id", row.get("file", row.get("file_name")))
        if key is None or not refs:
            raise BadInputError(path, f"entry {n} needs an id (or file) and at least one caption")
        file = row.get("file", row.get("file_name")) or f"{key}.npy"
        meta = {k: v for k, v in row.items() if k not in ("id", "file", "file_name", "caption", "captions")}
        items.append(caption_item(str(key), modality, [_resolve(file, [path.parent, files])], refs, meta))
    return items


def _resolve(file: str, bases: list[Path]) -> Path:
    for base in bases:
        if (base / file).is_file():
            return base / file
    return bases[-1] / file


def read_synth(root: Path, modality: str, kind: str, split: str = "test") -> list[EvalItem]:
    """`onellm data synth` manifests, <root>/<modality>.jsonl."""
    path = root / f"{modality}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest (write one with `onellm data synth`)")
    return read_manifest_items(path, modality, kind, split)


def split_samples(path: Path, split: str) -> list[Sample]:
    """A manifest's samples in one split; when there are none, the error lists its splits."""
    from onellm.data.manifest import read_manifest

    samples = read_manifest(path)
    chosen = [s for s in samples if s.split == split]
    if not chosen:
        have = ", ".join(sorted({s.split for s in samples})) or "no samples at all"
        raise BadInputError(path, f"no samples in the {split!r} split; it has {have}")
    return chosen


def read_manifest_items(path: Path, modality: str, kind: str, split: str = "test") -> list[EvalItem]:
    """One caption item per sample with a caption (scored against its meta["references"]
    when the converter wrote them), or one QA item per question (id "<sample id>#<n>"), of
    the split's samples of one modality; a qa entry with `choices` is multiple choice."""
    samples = [s for s in split_samples(path, split) if s.modality == modality]
    if not samples:
        raise BadInputError(path, f"no {modality} samples in the {split} split")
    if kind == "caption":
        return [EvalItem.of(s, qa=[]) for s in samples if s.caption]
    return [EvalItem.of(s, id=f"{s.id}#{n}", qa=[qa]) for s in samples for n, qa in enumerate(s.qa)]
