"""Media the tests write: a short video of a bar moving right, with or without its own
soundtrack (the project's own MP4 writer, AAC for the sound)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onellm.tokenizers.video import write_mp4


def bar_clip(path: Path, sound: bool = True, frames: int = 20, fps: int = 10) -> Path:
    """`frames` 64 x 48 frames of an orange bar moving right and, with `sound`, a 2 s 440 Hz
    tone at 16 kHz as the file's audio stream."""
    video = []
    for i in range(frames):
        frame = np.full((48, 64, 3), 20, np.uint8)
        frame[:, 2 * i : 2 * i + 12] = (200, 80, 30)
        video.append(frame)
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    write_mp4(Path(path), video, fps, sound=(wave, 16000) if sound else None)
    return Path(path)
