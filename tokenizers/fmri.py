"""fmri: one Linear over the voxel vector, its output read as a few tokens; synthetic volumes
whose region of interest carries the pattern of the stimulus seen; the demo's voxel plot."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from onellm.config import EncoderConfig
from onellm.data.synth.common import pick, save_atomic
from onellm.errors import BadInputError, describe
from onellm.modality import LoadContext, ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.readers import MAX_ARRAY_VALUES, read_npy
from onellm.sources import FileSource, MemoryFile

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class FMRIOptions:
    voxels: int = 15724  # NSD subject 1, "nsdgeneral" ROI
    tokens: int = 8


class FMRITokenizer(ModalityTokenizer):
    Options = FMRIOptions

    def __init__(self, encoder: EncoderConfig, options: FMRIOptions) -> None:
        super().__init__(encoder, options)
        self.input_shape = (options.voxels,)
        self.num_patches = options.tokens
        self.proj = nn.Linear(options.voxels, encoder.width * options.tokens)
        self.pos_embed = learned_pos_embed(options.tokens + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        # Channel-major, as published: token j, channel c = output[c * tokens + j].
        out = self.proj(x.to(self.proj.weight.dtype))
        patches = out.view(x.shape[0], -1, self.num_patches).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


def _read_nifti(path: FileSource) -> np.ndarray:
    try:
        image = _load_nifti(path)
        values = int(np.prod(image.shape, dtype=np.int64))
        if values > MAX_ARRAY_VALUES:  # before get_fdata allocates them
            limit = f"over the {MAX_ARRAY_VALUES:,}-value limit"
            raise BadInputError(path, f"declares a volume of {list(image.shape)}, {limit}")
        return np.asarray(image.get_fdata(dtype=np.float32))
    except BadInputError:
        raise
    except Exception as err:  # nibabel and its gzip reader raise many types
        raise BadInputError(path, f"not a readable NIfTI file ({describe(err)})") from err


def _load_nifti(path: FileSource):
    """nibabel.load's lazy image: the header read, the voxels not yet."""
    import nibabel  # only volumes need it

    return _nifti_from_memory(path) if isinstance(path, MemoryFile) else nibabel.load(str(path))


def _nifti_from_memory(path: MemoryFile):
    """What nibabel.load does with a NIfTI file, over bytes: its choice among the single-file
    NIfTI classes by the header's magic, a .gz decompressed as it is read, its errors."""
    import nibabel
    from nibabel.filebasedimages import ImageFileError

    if not path.data:
        raise ImageFileError(f"Empty file: '{path}'")
    gz = path.suffix.lower() == ".gz"
    stream = gzip.GzipFile(fileobj=path.open("rb")) if gz else path.open("rb")
    try:
        head = stream.read(1024)
    except (OSError, EOFError):  # nibabel.load tells a damaged .gz by its signature, below
        head = b""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        for klass in (nibabel.Nifti1Image, nibabel.Cifti2Image, nibabel.Nifti2Image):  # nibabel.load's order
            if klass.header_class.may_contain_header(head):
                stream.seek(0)
                return klass.from_stream(stream)
    if gz and not path.data.startswith(b"\x1f\x8b"):
        raise ImageFileError(f"File {path} is not a gzip file")
    raise ImageFileError(f'Cannot work out file type of "{path}"')


def read_voxels(paths: list[FileSource]) -> np.ndarray:
    """A NIfTI volume (4-D: repetitions averaged) masked by its ROI mask (paths[1], nonzero
    voxels in C order), or an .npy voxel vector [V] / [repetitions, V] (averaged)."""
    path = paths[0]
    if path.suffix.lower() == ".npy":
        array = read_npy(path)
        if array.ndim not in (1, 2):
            raise BadInputError(path, f"expected voxels [V] or [repetitions, V], got {list(array.shape)}")
        return array.reshape(-1, array.shape[-1]).mean(axis=0)
    volume = _read_nifti(path)
    if volume.ndim == 4:
        volume = volume.mean(axis=3)
    if volume.ndim != 3:
        raise BadInputError(path, f"expected a 3-D volume or 4-D repetitions, got {list(volume.shape)}")
    if len(paths) < 2:
        raise BadInputError(path, "a NIfTI volume needs its ROI mask as a companion file (files: [volume, mask])")
    if not paths[1].is_file():
        raise BadInputError(path, f"its companion ROI mask {paths[1]} does not exist")
    mask = _read_nifti(paths[1]).squeeze()
    if mask.shape != volume.shape:
        raise BadInputError(
            paths[1], f"ROI mask of shape {list(mask.shape)} does not match the volume {path.name} {list(volume.shape)}"
        )
    return volume[mask != 0]  # boolean indexing walks the volume in C order


def load_fmri(paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None) -> torch.Tensor:
    """[voxels]: the ROI's voxel vector, which must have exactly the configured length."""
    voxels = read_voxels(paths)
    want = ctx.options.voxels
    if voxels.shape[0] != want:
        raise BadInputError(paths[0], f"{voxels.shape[0]} voxels, but the fmri tokenizer takes {want}")
    if not np.isfinite(voxels).all():
        raise BadInputError(paths[0], "voxel values hold NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(voxels))


# ---- synthetic samples (`onellm data synth`) ------------------------------------------------
# 16x16x16 volumes, 3 repetitions, whose region-of-interest voxels carry the activation
# pattern of the stimulus class the subject was viewing. The brain is the same in every
# sample, as for one scanned subject: the ROI mask (exactly 1024 voxels, the tiny and smollm2
# presets' voxel count) and the class patterns come from a fixed generator, not from the
# sample's. The mask is written once per world and named as every sample's companion file.

GRID, REPETITIONS, ROI_VOXELS = 16, 3, 1024
MASK_NAME = "roi_mask.nii.gz"
# class: (what the caption says was seen, whether it is alive)
STIMULI = {
    "face": ("a face", True),
    "house": ("a house", False),
    "animal": ("an animal", True),
    "food": ("some food", False),
    "vehicle": ("a vehicle", False),
    "text": ("written text", False),
}
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])  # 3 mm isotropic voxels


@lru_cache(maxsize=1)
def brain() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(brain [16, 16, 16] bool, ROI mask [16, 16, 16] bool inside it, class patterns
    {class: [1024]} with zero mean and unit variance)."""
    rng = np.random.default_rng(zlib.crc32(b"onellm synthetic brain"))
    axes = (np.arange(GRID) - (GRID - 1) / 2) / (GRID / 2)
    x, y, z = np.meshgrid(axes, axes, axes, indexing="ij")
    inside = x**2 + y**2 / 1.3 + z**2 < 1.0
    # The ROI: the 1024 brain voxels nearest a posterior point, like a visual cortex; the
    # fixed jitter makes the boundary irregular and the ranking free of ties.
    score = (x**2 + ((y + 0.55) / 0.8) ** 2 + ((z + 0.1) / 1.2) ** 2) + rng.uniform(0, 0.05, size=x.shape)
    score[~inside] = np.inf
    mask = np.zeros(GRID**3, dtype=bool)
    mask[np.argsort(score.ravel(), kind="stable")[:ROI_VOXELS]] = True
    mask = mask.reshape(x.shape)
    # Each class activates a few blobs inside the ROI plus a voxel-level fingerprint.
    roi_xyz = np.stack([x[mask], y[mask], z[mask]], axis=1)
    patterns = {}
    for name in STIMULI:
        centres = roi_xyz[rng.choice(ROI_VOXELS, size=3, replace=False)]
        distance2 = ((roi_xyz[:, None, :] - centres[None]) ** 2).sum(-1)
        blobs = (np.exp(-distance2 / 0.05) * rng.choice([-1.0, 1.0], size=3)).sum(axis=1)
        pattern = blobs / blobs.std() + 0.7 * rng.normal(size=ROI_VOXELS)
        patterns[name] = (pattern - pattern.mean()) / pattern.std()
    return inside, mask, patterns


def write_mask(path: Path) -> None:
    import nibabel

    if not path.exists():
        mask = brain()[1].astype(np.uint8)
        save_atomic(path, lambda tmp: nibabel.save(nibabel.Nifti1Image(mask, AFFINE), tmp))


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.nii.gz` [16, 16, 16, 3] (float32, 3 repetitions) and, once per folder,
    `roi_mask.nii.gz`; files = [volume, mask]."""
    import nibabel

    stimulus = pick(rng, tuple(STIMULI))
    inside, mask, patterns = brain()
    # Response amplitudes (betas, as NSD distributes them: z-scored, no anatomy left):
    # the class pattern in the ROI, noise everywhere inside the brain, zero outside it.
    signal = np.zeros(mask.shape)
    signal[mask] = rng.uniform(0.8, 1.2) * patterns[stimulus]
    noise = rng.normal(0, 0.8, size=mask.shape + (REPETITIONS,))
    volume = (signal[..., None] + noise) * inside[..., None]
    path = out_dir / f"{sample_id}.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), AFFINE), path)
    write_mask(out_dir / MASK_NAME)

    seen, alive = STIMULI[stimulus]
    caption = pick(
        rng, (f"the subject was viewing {seen}", f"the subject was looking at {seen}", f"a picture of {seen} was shown")
    )
    return {
        "files": [path.name, MASK_NAME],
        "caption": caption,
        "qa": [
            {"question": "What was the subject looking at?", "answer": stimulus},
            {"question": "Was it a living thing?", "answer": "yes" if alive else "no"},
        ],
        "meta": {"stimulus": stimulus, "repetitions": REPETITIONS},
    }


# ---- demo preview -------------------------------------------------------------------------


def preview(paths: list[Path]) -> Figure:
    """The voxel vector, as a line and folded into a square so that its structure shows."""
    from matplotlib.figure import Figure  # the demo's dependency, not the loader's

    vector = read_voxels([Path(p) for p in paths])
    side = int(np.ceil(np.sqrt(vector.size)))
    square = np.full(side * side, np.nan, dtype=np.float32)
    square[: vector.size] = vector
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    line, grid = fig.subplots(1, 2, width_ratios=(2, 1))
    line.plot(vector, linewidth=0.5)
    line.set(xlabel="voxel", ylabel="value", title=f"{paths[0].name}: {vector.size} voxels")
    grid.imshow(square.reshape(side, side), cmap="coolwarm")
    grid.set_axis_off()
    return fig


FMRI = ModalitySpec(
    name="fmri",
    tokenizer=FMRITokenizer,
    load=load_fmri,
    extensions=(".nii", ".nii.gz", ".npy"),
    prompt="Provide a one-sentence caption for the provided fMRI.",
    description="voxel vector through a Linear, reshaped into tokens",
    companions=("roi mask",),
    synthesize=synthesize,
    preview=preview,
)
