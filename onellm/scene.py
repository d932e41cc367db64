"""Scenes: synthetic worlds whose samples have several inputs (a video with its own
soundtrack, say), registered by name like modalities. `onellm data synth` writes each scene
whose modalities it writes, under `out/<scene>/` with the manifest `out/<scene>.jsonl`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SceneSpec:
    """`synthesize(out_dir, sample_id, rng)` writes one sample's files and returns its manifest
    fields: `inputs` ({modality, files, meta?} each, files relative to out_dir), `caption`,
    `qa`, `meta`. A caption should need every input, so that none alone scores full marks."""

    name: str
    modalities: tuple[str, ...]
    synthesize: Callable[[Path, str, np.random.Generator], dict[str, Any]]
    description: str = ""
