"""A small real captioned dataset to walk docs/own-data.md with: files + one table.

Images: the 1,797 handwritten digits scikit-learn ships (UCI optdigits test set: 8x8
grey levels 0-16 from 43 writers), saved as PNGs. Audio: the ten digit words spoken by
espeak-ng in 12 voices (voice x variant x pitch), saved as WAVs; two voices are held out
entirely, so the test split asks for an unseen speaker. The table (captions.csv) has
path, caption, question, answer and split columns, as a user's own table would.

    python examples/own-data/make_digits.py --out digits        # needs scikit-learn, espeak-ng
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# (espeak voice+variant, pitch 0-99, words per minute); the last two are the held-out speakers.
VOICES = [("en-us", 50, 160), ("en-us+f2", 60, 150), ("en-gb", 40, 170), ("en-gb+m3", 30, 140),
          ("en-gb-scotland", 50, 160), ("en-029+f3", 70, 150), ("en-us+m5", 35, 175),
          ("en-gb-x-rp+f4", 65, 155), ("en-us+m2", 45, 145), ("en-gb-x-gbclan+f1", 55, 165),
          ("en-gb-x-rp+m4", 40, 150), ("en-us+f5", 75, 160)]
HELD_OUT_VOICES = 2


def _split(index: int, n: int, val: float = 0.1, test: float = 0.2) -> str:
    """Deterministic and interleaved, so each split holds every writer's style and class."""
    position = (index * 0.6180339887) % 1.0
    return "test" if position < test else "val" if position < test + val else "train"


def write_images(out: Path) -> list[dict[str, str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        name = f"images/{i:04d}.png"
        grey = (255 - pixels * (255 / 16)).round().astype(np.uint8)  # dark ink on white paper
        Image.fromarray(grey, mode="L").save(out / name)
        word = WORDS[int(label)]
        rows.append({"path": name, "caption": f"a handwritten digit {word}",
                     "question": "Which digit is written here?", "answer": word,
                     "split": _split(i, len(digits.images))})
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
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(out / name), word],
                           check=True, capture_output=True)
            split = "test" if held_out else ("val" if (v + d) % 10 == 0 else "train")
            rows.append({"path": name, "caption": f"a voice saying {word}",
                         "question": "Which number is spoken?", "answer": word, "split": split})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for name, rows in (("images.csv", write_images(args.out)), ("speech.csv", write_speech(args.out))):
        with open(args.out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
        print(f"{args.out / name}: {len(rows)} rows, {splits}")


if __name__ == "__main__":
    main()
