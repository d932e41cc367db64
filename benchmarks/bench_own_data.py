"""Learning on a real captioned dataset, by the documented path (docs/own-data.md): table ->
`onellm data convert tsv` -> `onellm data check` -> `onellm fit` (stage 1 images; stage 2
speech with and without replay) -> `onellm eval --manifest`, every step a CLI command.

Each rendering of the digits (examples/own-data/make_digits.py --rendering: size, ink
polarity, resampling, JPEG compression) is trained and scored on its own, so a recipe is
judged on data it was not tuned on. Reports the label accuracy of generated captions on the
held-out test split (a digit's handwriting from unseen samples; speech from two unseen
voices) beside the majority class, a logistic regression and a small CNN trained on the same
preprocessed inputs and split, and the minutes each training stage took (wall and CPU: the
CPU time of the process and its loader workers).

    python benchmarks/bench_own_data.py --out own-data-run                      # tiny, every rendering
    python benchmarks/bench_own_data.py --out own-data-smollm2 --preset smollm2 --renderings walkthrough
    python benchmarks/bench_own_data.py --out own-data-run --renderings walkthrough --speech
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own-data"
sys.path.insert(0, str(EXAMPLE))
from make_digits import RENDERINGS  # noqa: E402  (the example's renderings, one list)

if TYPE_CHECKING:
    import torch


def onellm(*args: str, cwd: Path) -> dict[str, float]:
    """Runs one command; its wall and CPU minutes (CPU time is what a busy machine does not inflate)."""
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "onellm.cli", *args], cwd=cwd, check=True)
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    return {"wall": round((time.perf_counter() - start) / 60, 2), "cpu": round(cpu / 60, 2)}


def label_accuracy(model: Path, manifest: Path, out: Path, cwd: Path) -> dict[str, float]:
    onellm("eval", "--model", str(model), "--manifest", str(manifest), "--out", str(out), cwd=cwd)
    metrics = json.loads((out / f"manifest-caption-{manifest.stem}" / "results.json").read_text())["metrics"]
    return {k: metrics[k] for k in ("label_accuracy", "label_chance", "label_majority")}


def _preprocessed(manifest: Path, preset: str, split: str) -> tuple[torch.Tensor, list[str]]:
    """The split's inputs as the model's own loader prepares them (no training augmentation)."""
    import torch

    from onellm.config import OneLLMConfig
    from onellm.data.manifest import read_manifest
    from onellm.inputs import load_input
    from onellm.registry import get_modality

    samples = [s for s in read_manifest(manifest) if s.split == split]
    config = OneLLMConfig.from_preset(preset)
    modality = samples[0].modality
    tokenizer = get_modality(modality).tokenizer.from_options(config.encoder, config.modalities[modality])
    return torch.stack([load_input(s.paths(), modality, tokenizer) for s in samples]), [s.caption for s in samples]


def logistic_baseline(manifest: Path, preset: str) -> float:
    """Logistic regression on the model's own preprocessed inputs, train split -> test split."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    (xtr, ytr), (xte, yte) = (_preprocessed(manifest, preset, s) for s in ("train", "test"))
    xtr, xte = xtr.flatten(1).numpy(), xte.flatten(1).numpy()
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit((xtr - mean) / std, ytr)
    return float((clf.predict((xte - mean) / std) == np.array(yte)).mean())


def cnn_baseline(manifest: Path, preset: str, epochs: int = 30, seed: int = 0) -> float:
    """A small convolutional classifier (three conv layers) trained from scratch on the same
    preprocessed images and split, best epoch by validation accuracy: the strong baseline a
    captioning model of the same inputs should come near."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    data = {s: _preprocessed(manifest, preset, s) for s in ("train", "val", "test")}
    classes = sorted(set(data["train"][1]))
    xs = {s: x for s, (x, _) in data.items()}
    ys = {s: torch.tensor([classes.index(c) for c in y]) for s, (_, y) in data.items()}
    width = 32
    net = nn.Sequential(
        nn.Conv2d(xs["train"].shape[1], width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, len(classes)),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)

    def accuracy(split: str) -> float:
        net.eval()
        with torch.no_grad():
            return float((net(xs[split]).argmax(-1) == ys[split]).float().mean())

    best_val, best_test = -1.0, 0.0
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xs["train"])).split(32):
            loss = nn.functional.cross_entropy(net(xs["train"][idx]), ys["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = accuracy("val")
        if val > best_val:
            best_val, best_test = val, accuracy("test")
    return best_test


def _config(stage: str, preset: str) -> Path:
    """The walkthrough's stage config for the preset: stage1-image.yaml (tiny) or
    stage1-image-smollm2.yaml."""
    name = f"{stage}.yaml" if preset == "tiny" else f"{stage}-{preset}.yaml"
    return EXAMPLE / name


def _rendering(out: Path, rendering: str, preset: str, args: argparse.Namespace) -> dict:
    """Stage 1 on one rendering of the digits, scored on its test split beside the baselines."""
    data = out / rendering
    speech = args.speech
    if not (data / "images.csv").is_file() or (speech and not (data / "speech.csv").is_file()):
        subprocess.run(
            [
                sys.executable,
                str(EXAMPLE / "make_digits.py"),
                "--out",
                str(data),
                "--rendering",
                rendering,
                *([] if speech else ["--no-speech"]),
            ],
            check=True,
        )
    tables = [("images.csv", "image")] + ([("speech.csv", "audio")] if speech else [])
    for table, modality in tables:
        onellm(
            "data",
            "convert",
            "tsv",
            str(data / table),
            "--modality",
            modality,
            "--media-root",
            str(data),
            "--out",
            str(data / f"{modality}.jsonl"),
            cwd=out,
        )
    onellm("data", "check", *(str(data / f"{m}.jsonl") for _, m in tables), "--model", preset, cwd=out)
    base = [
        "--data.data_root",
        str(data),
        "--threads",
        str(args.threads),
        "--trainer.enable_progress_bar",
        "false",
        *(["--data.batch_size", str(args.batch_size)] if args.batch_size else []),
    ]
    run = f"{preset}-{rendering}"
    stage1 = out / "runs" / run / "export"
    report: dict = {
        "minutes": {
            "stage1": onellm(
                "fit",
                "--config",
                str(_config("stage1-image", preset)),
                *base,
                "--model.export_dir",
                str(stage1),
                *(["--trainer.max_steps", str(args.stage1_steps)] if args.stage1_steps else []),
                "--trainer.default_root_dir",
                f"runs/{run}",
                "--trainer.logger.name",
                run,
                cwd=out,
            )
        }
    }
    report["stage1"] = {"image": label_accuracy(stage1, data / "image.jsonl", out / "eval" / run, out)}
    report["logistic regression"] = {"image": logistic_baseline(data / "image.jsonl", preset)}
    report["small CNN"] = {"image": cnn_baseline(data / "image.jsonl", preset)}
    if not speech:
        return report
    for name, replay in (("replay", "0.25"), ("no-replay", "0")):
        export = out / "runs" / f"{run}-stage2-{name}" / "export"
        report["minutes"][f"stage2 {name}"] = onellm(
            "fit",
            "--config",
            str(_config("stage2-speech", preset)),
            *base,
            "--data.replay",
            replay,
            "--model.init_from",
            str(stage1),
            "--model.export_dir",
            str(export),
            "--trainer.default_root_dir",
            f"runs/{run}-stage2-{name}",
            "--trainer.logger.name",
            f"{run}-stage2-{name}",
            *(["--trainer.max_steps", str(args.stage2_steps)] if args.stage2_steps else []),
            cwd=out,
        )
        report[f"stage2 {name}"] = {
            m: label_accuracy(export, data / f"{m}.jsonl", out / "eval" / f"{run}-{name}" / m, out)
            for m in ("image", "audio")
        }
    report["logistic regression"]["audio"] = logistic_baseline(data / "audio.jsonl", preset)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("own-data-run"))
    parser.add_argument("--preset", default="tiny", choices=["tiny", "smollm2"])
    parser.add_argument(
        "--renderings",
        nargs="+",
        default=list(RENDERINGS),
        choices=list(RENDERINGS),
        help="renderings of the digits to train and score on (default: all)",
    )
    parser.add_argument(
        "--speech", action="store_true", help="also stage 2 (speech, with and without replay) on each rendering"
    )
    parser.add_argument("--stage1-steps", type=int, help="default: the stage config's")
    parser.add_argument("--stage2-steps", type=int, help="default: the stage config's")
    parser.add_argument("--batch-size", type=int, help="default: the stage config's")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for rendering in args.renderings:
        reports[rendering] = _rendering(out, rendering, args.preset, args)
        (out / "report.json").write_text(json.dumps(reports, indent=2))
    print(f"\n{args.preset}: label accuracy of generated captions on the held-out test digits")
    print(
        "| rendering | model | majority class | logistic regression | small CNN | model - CNN | training wall / CPU min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rendering, r in reports.items():
        got, cnn = r["stage1"]["image"]["label_accuracy"], r["small CNN"]["image"]
        minutes = r["minutes"]["stage1"]
        print(
            f"| {rendering} | {got:.1%} | {r['stage1']['image']['label_majority']:.1%} | "
            f"{r['logistic regression']['image']:.1%} | {cnn:.1%} | {100 * (got - cnn):+.1f} | "
            f"{minutes['wall']} / {minutes['cpu']} |"
        )
    worst = min(reports, key=lambda k: reports[k]["stage1"]["image"]["label_accuracy"])
    print(f"worst: {worst}, {reports[worst]['stage1']['image']['label_accuracy']:.1%}")


if __name__ == "__main__":
    main()
