"""A small real captioned dataset to walk docs/own-data.md with: files + one table.

Images: the 1,797 handwritten digits scikit-learn ships (UCI optdigits test set: 8x8
grey levels 0-16 from 43 writers), saved as PNGs. Audio: the ten digit words spoken by
espeak-ng in 12 voices (voice x variant x pitch), saved as WAVs; two voices are held out
entirely, so the test split asks for an unseen speaker. The table (captions.csv) has
path, caption, question, answer and split columns, as a user's own table would.

`--rendering` writes the same digits another way (size, ink polarity, resampling filter and
file format), so a recipe can be checked on data it was not tuned on:

    python examples/own-data/make_digits.py --out digits        # needs scikit-learn, espeak-ng
    python examples/own-data/make_digits.py --out digits-big --rendering big-light-bicubic-jpeg
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# (espeak voice+variant, pitch 0-99, words per minute); the last two are the held-out speakers.
VOICES = [
    ("en-us", 50, 160),
    ("en-us+f2", 60, 150),
    ("en-gb", 40, 170),
    ("en-gb+m3", 30, 140),
    ("en-gb-scotland", 50, 160),
    ("en-029+f3", 70, 150),
    ("en-us+m5", 35, 175),
    ("en-gb-x-rp+f4", 65, 155),
    ("en-us+m2", 45, 145),
    ("en-gb-x-gbclan+f1", 55, 165),
    ("en-gb-x-rp+m4", 40, 150),
    ("en-us+f5", 75, 160),
]
HELD_OUT_VOICES = 2


@dataclass(frozen=True)
class Rendering:
    """How the 8x8 grey levels become an image file."""

    size: int = 8  # pixels per side
    light_ink: bool = False  # light digits on a dark ground instead of dark ink on white
    resample: str = "nearest"  # PIL filter of the upscaling: nearest, bilinear, bicubic, lanczos
    fmt: str = "png"  # png, or jpeg at `quality`
    quality: int = 90


RENDERINGS = {
    "walkthrough": Rendering(),
    "big-light-bicubic-jpeg": Rendering(size=64, light_ink=True, resample="bicubic", fmt="jpeg", quality=40),
    "mid-dark-bilinear-jpeg": Rendering(size=24, resample="bilinear", fmt="jpeg", quality=25),
    "small-light-lanczos-png": Rendering(size=16, light_ink=True, resample="lanczos"),
    "huge-dark-nearest-jpeg": Rendering(size=112, resample="nearest", fmt="jpeg", quality=15),
}


def _split(index: int, n: int, val: float = 0.1, test: float = 0.2) -> str:
    """Deterministic and interleaved, so each split holds every writer's style and class."""
    position = (index * 0.6180339887) % 1.0
    return "test" if position < test else "val" if position < test + val else "train"


def write_images(out: Path, rendering: Rendering = Rendering()) -> list[dict[str, str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    resample = getattr(Image.Resampling, rendering.resample.upper())
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        name = f"images/{i:04d}.{'jpg' if rendering.fmt == 'jpeg' else 'png'}"
        ink = pixels * (255 / 16)
        grey = (ink if rendering.light_ink else 255 - ink).round().astype(np.uint8)
        picture = Image.fromarray(grey, mode="L")
        if rendering.size != picture.width:
            picture = picture.resize((rendering.size, rendering.size), resample)
        picture.save(out / name, **({"quality": rendering.quality} if rendering.fmt == "jpeg" else {}))
        word = WORDS[int(label)]
        rows.append(
            {
                "path": name,
                "caption": f"a handwritten digit {word}",
                "question": "Which digit is written here?",
                "answer": word,
                "split": _split(i, len(digits.images)),
            }
        )
    return rows


def write_speech(out: Path) -> list[dict[str, str]]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    (out / "speech").mkdir(parents=True, exist_ok=True)
    rows = []
    for v, (voice, pitch, speed) in enumerate(VOICES):
        held_out = v >= len(VOICES) - HELD_OUT_VOICES
        for d, word in enumerate(WORDS):
            name = f"speech/voice{v:02d}-{word}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(out / name), word],
                check=True,
                capture_output=True,
            )
            split = "test" if held_out else ("val" if (v + d) % 10 == 0 else "train")
            rows.append(
                {
                    "path": name,
                    "caption": f"a voice saying {word}",
                    "question": "Which number is spoken?",
                    "answer": word,
                    "split": split,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--rendering",
        choices=list(RENDERINGS),
        default="walkthrough",
        help="how the digits are drawn (default: 8x8 dark-on-white PNGs)",
    )
    parser.add_argument("--no-speech", action="store_true", help="write the images only")
    args = parser.parse_args()
    tables = [("images.csv", write_images(args.out, RENDERINGS[args.rendering]))]
    if not args.no_speech:
        tables.append(("speech.csv", write_speech(args.out)))
    for name, rows in tables:
        with open(args.out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
        print(f"{args.out / name}: {len(rows)} rows, {splits}")


if __name__ == "__main__":
    main()
