"""Synthetic ECGs whose caption says what the trace shows: rhythm and heart rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 500
RHYTHMS = {  # name: (beats per minute range, beat-to-beat jitter as a fraction of the interval)
    "a regular sinus rhythm": (60, 90, 0.02),
    "a slow regular rhythm (bradycardia)": (38, 52, 0.02),
    "a fast regular rhythm (tachycardia)": (115, 150, 0.02),
    "an irregular rhythm (atrial fibrillation)": (80, 120, 0.30),
}


def _beat(t: np.ndarray) -> np.ndarray:
    """One PQRST complex as a sum of Gaussians, t in seconds from the R peak."""
    waves = ((-0.2, 0.025, 0.15), (-0.03, 0.01, -0.1), (0.0, 0.012, 1.0), (0.03, 0.01, -0.25), (0.25, 0.05, 0.3))
    return sum(a * np.exp(-((t - c) ** 2) / (2 * w**2)) for c, w, a in waves)


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.ecg.npy` [5000, 12] and describe it; returns manifest fields."""
    name = list(RHYTHMS)[rng.integers(len(RHYTHMS))]
    low, high, jitter = RHYTHMS[name]
    bpm = rng.uniform(low, high)
    t = np.arange(10 * RATE) / RATE
    trace = np.zeros_like(t)
    beat_time = rng.uniform(0, 60 / bpm)
    while beat_time < t[-1] + 1:
        trace += _beat(t - beat_time)
        beat_time += 60 / bpm * (1 + rng.uniform(-jitter, jitter))
    gains = rng.uniform(0.5, 1.5, size=12)
    leads = trace[:, None] * gains[None, :] + rng.normal(0, 0.03, size=(t.size, 12))
    path = out_dir / f"{sample_id}.ecg.npy"
    np.save(path, leads.astype(np.float32))
    speed = "slow" if bpm < 55 else "fast" if bpm > 110 else "normal"
    return {
        "files": [path.name],
        "caption": f"{name} at about {round(bpm / 5) * 5} beats per minute",
        "qa": [
            {"question": "Is the rhythm regular?", "answer": "no" if jitter > 0.1 else "yes"},
            {"question": "Is the heart rate slow, normal or fast?", "answer": speed},
        ],
        "meta": {"bpm": round(float(bpm), 1)},
    }
