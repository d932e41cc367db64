"""Synthetic fMRI: 16x16x16 volumes, 3 repetitions, whose region-of-interest voxels carry
the activation pattern of the stimulus class the subject was viewing.

The brain is the same in every sample, as for one scanned subject: the ROI mask (exactly
1024 voxels, the tiny and smollm2 presets' voxel count) and the class patterns come from a
fixed generator, not from the sample's. The mask is written once per world and named as
every sample's companion file."""
from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from .common import pick, save_atomic

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
    if not path.exists():
        mask = brain()[1].astype(np.uint8)
        save_atomic(path, lambda tmp: nib.save(nib.Nifti1Image(mask, AFFINE), tmp))


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.nii.gz` [16, 16, 16, 3] (float32, 3 repetitions) and, once per folder,
    `roi_mask.nii.gz`; files = [volume, mask]."""
    stimulus = pick(rng, tuple(STIMULI))
    inside, mask, patterns = brain()
    # Response amplitudes (betas, as NSD distributes them: z-scored, no anatomy left):
    # the class pattern in the ROI, noise everywhere inside the brain, zero outside it.
    signal = np.zeros(mask.shape)
    signal[mask] = rng.uniform(0.8, 1.2) * patterns[stimulus]
    noise = rng.normal(0, 0.8, size=mask.shape + (REPETITIONS,))
    volume = (signal[..., None] + noise) * inside[..., None]
    path = out_dir / f"{sample_id}.nii.gz"
    nib.save(nib.Nifti1Image(volume.astype(np.float32), AFFINE), path)
    write_mask(out_dir / MASK_NAME)

    seen, alive = STIMULI[stimulus]
    caption = pick(rng, (f"the subject was viewing {seen}", f"the subject was looking at {seen}", f"a picture of {seen} was shown"))
    return {
        "files": [path.name, MASK_NAME],
        "caption": caption,
        "qa": [
            {"question": "What was the subject looking at?", "answer": stimulus},
            {"question": "Was it a living thing?", "answer": "yes" if alive else "no"},
        ],
        "meta": {"stimulus": stimulus, "repetitions": REPETITIONS},
    }
