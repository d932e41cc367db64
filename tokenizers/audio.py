"""audio: Conv2d patches over a [1, mel, frames] kaldi fbank, with its own positional table;
synthetic tones whose caption names pitch, rhythm and loudness; the demo's spectrogram."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import nn

from onellm.config import EncoderConfig
from onellm.data.synth.common import pick
from onellm.errors import BadInputError, describe
from onellm.modality import LoadContext, ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.sources import FileSource, readable

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class AudioOptions:
    mel_bins: int = 128
    frames: int = 1024
    kernel: int = 16
    stride: int = 10


SAMPLE_RATE = 16000
# Mean and std of AudioSet fbanks, the normalisation the published weights were trained with.
FBANK_MEAN, FBANK_STD = -4.2677393, 4.5689974
# SpecAugment widths at the published 128 x 1024 fbank; other sizes scale them.
FREQ_MASK_AT_128, TIME_MASK_AT_1024 = 48, 192


class AudioTokenizer(ModalityTokenizer):
    Options = AudioOptions

    def __init__(self, encoder: EncoderConfig, options: AudioOptions) -> None:
        super().__init__(encoder, options)
        o = options
        self.input_shape = (1, o.mel_bins, o.frames)
        grid = [(n - o.kernel) // o.stride + 1 for n in (o.mel_bins, o.frames)]
        if min(grid) < 1:
            raise ValueError(f"audio kernel {o.kernel} is larger than the {o.mel_bins}x{o.frames} fbank")
        self.num_patches = grid[0] * grid[1]
        self.conv = nn.Conv2d(1, encoder.width, kernel_size=o.kernel, stride=o.stride)
        self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        # [B, W, mel, time] flattened mel-major, as the published weights expect.
        patches = self.conv(x.to(self.conv.weight.dtype)).flatten(2).transpose(1, 2)
        return TokenGrid(patches.unsqueeze(1), self.pos_embed)


def read_first_channel(path: FileSource) -> tuple[np.ndarray, int]:
    """float32 samples of the first channel (kaldi's default) and the sample rate. soundfile
    reads wav/flac/ogg; PyAV decodes the rest (mp3, m4a) without a system ffmpeg."""
    try:
        data, rate = soundfile.read(readable(path), dtype="float32", always_2d=True)
        return data[:, 0], rate
    except (soundfile.LibsndfileError, RuntimeError, TypeError, MemoryError):
        pass  # MemoryError: a damaged header declares more samples than there are; PyAV streams
    try:
        with av.open(readable(path)) as container:
            if not container.streams.audio:
                raise BadInputError(path, "no audio stream")
            stream = container.streams.audio[0]
            # Planar float keeps channels apart: each decoded chunk is [channels, n].
            to_float = av.AudioResampler(format="fltp")
            chunks = [c.to_ndarray()[0] for f in container.decode(stream) for c in to_float.resample(f)]
            chunks += [c.to_ndarray()[0] for c in to_float.resample(None)]
            rate = stream.rate
    except BadInputError:
        raise
    except Exception as err:  # FFmpeg's errors and whatever a damaged container makes PyAV raise
        raise BadInputError(path, f"not a readable audio file ({describe(err)})") from err
    return np.concatenate(chunks or [np.zeros(0, np.float32)]).astype(np.float32), rate


def fbank(wave: torch.Tensor, rate: int, mel_bins: int) -> torch.Tensor:
    """Kaldi log-mel fbank [frames, mel] of a mono waveform, resampled to 16 kHz first."""
    if rate != SAMPLE_RATE:
        wave = AF.resample(wave, rate, SAMPLE_RATE)
    wave = wave - wave.mean()
    return kaldi.fbank(
        wave.unsqueeze(0),
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=mel_bins,
        dither=0.0,
        frame_shift=10,
    )


def spec_augment(x: torch.Tensor) -> torch.Tensor:
    """One frequency and one time mask on [1, mel, frames] (torchaudio's, drawn from torch's
    global RNG), widths up to 48 of 128 bins and 192 of 1024 frames, scaled to the fbank size."""
    _, mel, frames = x.shape
    x = T.FrequencyMasking(FREQ_MASK_AT_128 * mel // 128)(x)
    return T.TimeMasking(TIME_MASK_AT_1024 * frames // 1024)(x)


def load_audio(
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[1, mel, frames]: fbank padded at the end or cropped to `frames`, transposed, normalised."""
    o = ctx.options
    samples, rate = read_first_channel(paths[0])
    # kaldi needs at least one 25 ms window.
    if rate <= 0 or len(samples) < rate * 0.025:
        raise BadInputError(paths[0], f"audio too short or empty ({len(samples)} samples at {rate} Hz)")
    bank = fbank(torch.from_numpy(samples), rate, o.mel_bins)[: o.frames]
    x = torch.nn.functional.pad(bank, (0, 0, 0, o.frames - bank.shape[0])).T.unsqueeze(0)
    if train:
        x = spec_augment(x)
    return (x - FBANK_MEAN) / (FBANK_STD * 2)


# ---- synthetic samples (`onellm data synth`): a tone the caption describes ----------------

SYNTH_RATES = (16000, 22050)
PITCHES = {"low": (150.0, 260.0), "medium": (420.0, 700.0), "high": (1300.0, 2200.0)}  # Hz ranges
LOUDNESS = {"quiet": (0.04, 0.08), "loud": (0.45, 0.7)}  # peak amplitude ranges
RHYTHMS = {"steady": "stays steady", "pulsing": "pulses", "rising": "rises"}
TIMBRES = {"pure": 0.0, "buzzy": 0.5}  # weight of the odd harmonics


def _waveform(
    pitch: float, rhythm: str, timbre: float, seconds: float, rate: int, rng: np.random.Generator
) -> np.ndarray:
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
    rate, seconds = pick(rng, SYNTH_RATES), float(rng.uniform(2.0, 3.0))
    pitch = float(rng.uniform(*PITCHES[pitch_name]))
    wave = _waveform(pitch, rhythm, TIMBRES[timbre], seconds, rate, rng) * rng.uniform(*LOUDNESS[loudness])
    wave = wave + rng.normal(0, 0.003, size=wave.shape)
    channels = 2 if rng.uniform() < 0.3 else 1
    if channels == 2:  # panned a little; kaldi reads the first channel, which always carries the tone
        wave = np.stack([wave, wave * rng.uniform(0.5, 1.0)], axis=1)
    path = out_dir / f"{sample_id}.{'flac' if rng.uniform() < 0.25 else 'wav'}"
    soundfile.write(path, np.clip(wave, -1, 1).astype(np.float32), rate, subtype="PCM_16")

    described = pick(
        rng,
        (
            f"a {loudness} {rhythm} {pitch_name}-pitched {timbre} tone",
            f"a {loudness}, {pitch_name}-pitched {timbre} tone that {RHYTHMS[rhythm]}",
        ),
    )
    return {
        "files": [path.name],
        "caption": described,
        "qa": [
            {"question": "Is the sound high, medium or low?", "answer": pitch_name},
            {"question": "Is the sound loud or quiet?", "answer": loudness},
            {"question": "Does the sound stay steady, pulse or rise?", "answer": rhythm},
        ],
        "meta": {
            "pitch": pitch_name,
            "rhythm": rhythm,
            "loudness": loudness,
            "timbre": timbre,
            "frequency_hz": round(pitch, 1),
            "sample_rate": rate,
            "channels": channels,
        },
    }


# ---- demo preview -------------------------------------------------------------------------


def preview(paths: list[Path]) -> list[Figure | Path]:
    """A spectrogram of the first channel (the one the model hears), and the file itself
    for the audio player."""
    from matplotlib.figure import Figure  # the demo's dependency, not the loader's

    wave, rate = read_first_channel(Path(paths[0]))
    fig = Figure(figsize=(6, 2.6), layout="constrained")
    ax = fig.add_subplot()
    if len(wave) >= 512:
        # Digital silence (an AAC track's leading padding) has zero power: -inf dB, drawn dark.
        with np.errstate(divide="ignore"):
            ax.specgram(wave, Fs=rate, NFFT=512, noverlap=384, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=f"{paths[0].name}: {len(wave) / rate:.1f} s at {rate} Hz")
    return [fig, Path(paths[0])]


AUDIO = ModalitySpec(
    name="audio",
    tokenizer=AudioTokenizer,
    load=load_audio,
    extensions=(".wav", ".flac", ".ogg", ".mp3"),
    prompt="Provide a one-sentence caption for the provided audio.",
    description="kaldi fbank [1, mel, frames] through a strided Conv2d",
    synthesize=synthesize,
    preview=preview,
    openai_parts=("input_audio", "audio_url"),
)
