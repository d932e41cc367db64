"""fmri: one Linear over the voxel vector, its output read as a few tokens."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onellm.config import EncoderConfig
from onellm.errors import BadInputError, describe
from onellm.modality import ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.readers import MAX_ARRAY_VALUES, read_npy


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


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel  # only volumes need it

    try:
        image = nibabel.load(str(path))
        values = int(np.prod(image.shape, dtype=np.int64))
        if values > MAX_ARRAY_VALUES:  # before get_fdata allocates them
            limit = f"over the {MAX_ARRAY_VALUES:,}-value limit"
            raise BadInputError(path, f"declares a volume of {list(image.shape)}, {limit}")
        return np.asarray(image.get_fdata(dtype=np.float32))
    except BadInputError:
        raise
    except Exception as err:  # nibabel and its gzip reader raise many types
        raise BadInputError(path, f"not a readable NIfTI file ({describe(err)})") from err


def read_voxels(paths: list[Path]) -> np.ndarray:
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


def load_fmri(
    paths: list[Path], tokenizer: FMRITokenizer, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[voxels]: the ROI's voxel vector, which must have exactly the configured length."""
    voxels = read_voxels(paths)
    want = tokenizer.options.voxels
    if voxels.shape[0] != want:
        raise BadInputError(paths[0], f"{voxels.shape[0]} voxels, but the fmri tokenizer takes {want}")
    if not np.isfinite(voxels).all():
        raise BadInputError(paths[0], "voxel values hold NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(voxels))


FMRI = ModalitySpec(
    name="fmri",
    tokenizer=FMRITokenizer,
    load=load_fmri,
    extensions=(".nii", ".nii.gz", ".npy"),
    prompt="Provide a one-sentence caption for the provided fMRI.",
    description="voxel vector through a Linear, reshaped into tokens",
    companions=("roi mask",),
    synthesize="onellm.data.synth.fmri:synthesize",
    preview="onellm.demo.previews:fmri_preview",
)
