"""The built-in audio-visual scene: a video whose picture shows a coloured shape moving and
whose soundtrack plays a tone, both in one .mp4. The caption names what moves and what
sounds, so a model hearing only the sound or seeing only the picture cannot get it all."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onellm.data.synth.common import BACKGROUNDS, COLOURS, SHAPES_2D, article, pick
from onellm.scene import SceneSpec

from .audio import PITCHES, RHYTHMS, _waveform
from .video import MOTIONS, SYNTH_FPS, SYNTH_FRAMES, _frames, write_mp4

SOUND_RATE = 16000


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.mp4` (64x64, 16 frames at 8 fps, with a 2 s mono AAC soundtrack at 16 kHz);
    returns manifest fields whose two inputs, video and audio, are that one file."""
    shape, colour = pick(rng, SHAPES_2D), pick(rng, tuple(COLOURS))
    background, motion = pick(rng, tuple(BACKGROUNDS)), pick(rng, tuple(MOTIONS))
    pitch_name, rhythm = pick(rng, tuple(PITCHES)), pick(rng, tuple(RHYTHMS))
    frames = _frames(shape, colour, background, motion, float(rng.uniform(7, 9)), rng.uniform(-2, 2, size=2))
    seconds = SYNTH_FRAMES / SYNTH_FPS
    wave = _waveform(float(rng.uniform(*PITCHES[pitch_name])), rhythm, 0.0, seconds, SOUND_RATE, rng) * 0.5
    path = out_dir / f"{sample_id}.mp4"
    write_mp4(path, frames, SYNTH_FPS, sound=(wave, SOUND_RATE))

    sound = f"{article(pitch_name)}-pitched tone {RHYTHMS[rhythm]}"
    caption = f"{article(f'{colour} {shape}')} {MOTIONS[motion][4]} while {sound}"
    return {
        "inputs": [{"modality": "video", "files": [path.name]}, {"modality": "audio", "files": [path.name]}],
        "caption": caption,
        # `type`: the stream a question is about; evaluation reports accuracy per type.
        "qa": [
            {"question": "What colour is the shape?", "answer": colour, "type": "visual"},
            {"question": "What shape is in the video?", "answer": shape, "type": "visual"},
            {"question": "Is the sound high, medium or low?", "answer": pitch_name, "type": "audio"},
            {"question": "Does the sound stay steady, pulse or rise?", "answer": rhythm, "type": "audio"},
        ],
        "meta": {
            "shape": shape,
            "colour": colour,
            "motion": motion,
            "background": background,
            "pitch": pitch_name,
            "rhythm": rhythm,
        },
    }


AUDIOVISUAL = SceneSpec(
    name="audiovisual",
    modalities=("video", "audio"),
    synthesize=synthesize,
    description="a moving shape with a tone as its soundtrack, one .mp4 read as video and as audio",
)
