"""Synthetic sounds: a tone whose pitch, rhythm and loudness the caption names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .common import pick

RATES = (16000, 22050)
PITCHES = {"low": (150.0, 260.0), "medium": (420.0, 700.0), "high": (1300.0, 2200.0)}  # Hz ranges
LOUDNESS = {"quiet": (0.04, 0.08), "loud": (0.45, 0.7)}  # peak amplitude ranges
RHYTHMS = {"steady": "stays steady", "pulsing": "pulses", "rising": "rises"}
TIMBRES = {"pure": 0.0, "buzzy": 0.5}  # weight of the odd harmonics


def _waveform(pitch: float, rhythm: str, timbre: float, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    if rhythm == "rising":
        # An exponential chirp up one octave: the phase is the integral of the frequency.
        k = np.log(2.0) / seconds
        phase = 2 * np.pi * pitch * np.expm1(k * t) / k
    else:
        phase = 2 * np.pi * pitch * t
    wave = np.sin(phase) + timbre * (np.sin(3 * phase) / 3 + np.sin(5 * phase) / 5)
    envelope = np.ones_like(t)
    if rhythm == "pulsing":
        beats = rng.uniform(2.5, 4.5)
        envelope = (np.mod(t * beats, 1.0) < 0.5).astype(float)
    # 10 ms fades at every on/off edge (and at both ends) keep the clicks out: a moving
    # average of the envelope, by cumulative sums.
    ramp = int(0.01 * rate)
    padded = np.concatenate([[0.0], np.cumsum(np.pad(envelope, (ramp // 2, ramp - 1 - ramp // 2)))])
    envelope = (padded[ramp:] - padded[:-ramp]) / ramp
    return wave / np.abs(wave).max() * envelope


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.wav` (or `.flac`), 2-3 s at 16 or 22.05 kHz, mono or stereo; returns
    manifest fields."""
    pitch_name, rhythm, loudness = pick(rng, tuple(PITCHES)), pick(rng, tuple(RHYTHMS)), pick(rng, tuple(LOUDNESS))
    timbre = pick(rng, tuple(TIMBRES))
    rate, seconds = pick(rng, RATES), float(rng.uniform(2.0, 3.0))
    pitch = float(rng.uniform(*PITCHES[pitch_name]))
    wave = _waveform(pitch, rhythm, TIMBRES[timbre], seconds, rate, rng) * rng.uniform(*LOUDNESS[loudness])
    wave = wave + rng.normal(0, 0.003, size=wave.shape)
    channels = 2 if rng.uniform() < 0.3 else 1
    if channels == 2:  # panned a little; kaldi reads the first channel, which always carries the tone
        wave = np.stack([wave, wave * rng.uniform(0.5, 1.0)], axis=1)
    path = out_dir / f"{sample_id}.{'flac' if rng.uniform() < 0.25 else 'wav'}"
    sf.write(path, np.clip(wave, -1, 1).astype(np.float32), rate, subtype="PCM_16")

    described = pick(rng, (
        f"a {loudness} {rhythm} {pitch_name}-pitched {timbre} tone",
        f"a {loudness}, {pitch_name}-pitched {timbre} tone that {RHYTHMS[rhythm]}",
    ))
    return {
        "files": [path.name],
        "caption": described,
        "qa": [
            {"question": "Is the sound high, medium or low?", "answer": pitch_name},
            {"question": "Is the sound loud or quiet?", "answer": loudness},
            {"question": "Does the sound stay steady, pulse or rise?", "answer": rhythm},
        ],
        "meta": {
            "pitch": pitch_name, "rhythm": rhythm, "loudness": loudness, "timbre": timbre,
            "frequency_hz": round(pitch, 1), "sample_rate": rate, "channels": channels,
        },
    }
