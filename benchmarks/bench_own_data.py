"""Learning on a real captioned dataset, by the documented path (docs/own-data.md): table ->
`onellm data convert tsv` -> `onellm data check` -> `onellm fit` (stage 1 images; stage 2
speech with and without replay) -> `onellm eval --manifest`, every step a CLI command.

Reports the label accuracy of generated captions on the held-out test split (a digit's
handwriting from unseen samples; speech from two unseen voices) against chance, the majority
class and a logistic regression on the same preprocessed inputs, and the minutes each
training stage took (wall and CPU: the CPU time of the process and its loader workers).

    python benchmarks/bench_own_data.py --out own-data-run             # tiny, about 25 minutes here
    python benchmarks/bench_own_data.py --out own-data-smollm2 --preset smollm2
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own-data"


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


def _preprocessed(manifest: Path, preset: str, split: str) -> tuple["torch.Tensor", list[str]]:
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
        nn.Conv2d(xs["train"].shape[1], width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, len(classes)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("own-data-run"))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--stage1-steps", type=int, default=1500)
    parser.add_argument("--stage2-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    out = args.out.resolve()
    data = out / "digits"
    if not (data / "images.csv").is_file():
        subprocess.run([sys.executable, str(EXAMPLE / "make_digits.py"), "--out", str(data)], check=True)
    for table, modality in (("images.csv", "image"), ("speech.csv", "audio")):
        onellm("data", "convert", "tsv", str(data / table), "--modality", modality, "--media-root", str(data),
               "--out", str(data / f"{modality}.jsonl"), cwd=out)
    onellm("data", "check", str(data / "image.jsonl"), str(data / "audio.jsonl"), "--model", args.preset, cwd=out)

    common = ["--model.model", args.preset, "--data.data_root", str(data), "--data.batch_size", str(args.batch_size),
              "--threads", str(args.threads), "--trainer.enable_progress_bar", "false"]
    report: dict[str, dict] = {"minutes": {}}
    report["minutes"]["stage1"] = onellm("fit", "--config", str(EXAMPLE / "stage1-image.yaml"), *common,
                                         "--trainer.max_steps", str(args.stage1_steps), cwd=out)
    stage1 = out / "runs" / "own-stage1" / "export"
    report["stage1"] = {"image": label_accuracy(stage1, data / "image.jsonl", out / "eval" / "stage1", out)}
    for name, replay in (("replay", "0.25"), ("no-replay", "0")):
        export = out / "runs" / f"own-stage2-{name}" / "export"
        report["minutes"][f"stage2 {name}"] = onellm(
            "fit", "--config", str(EXAMPLE / "stage2-speech.yaml"), *common, "--data.replay", replay,
            "--trainer.max_steps", str(args.stage2_steps), "--model.export_dir", str(export),
            "--trainer.default_root_dir", f"runs/own-stage2-{name}", "--trainer.logger.name",
            f"own-stage2-{name}", cwd=out)
        report[f"stage2 {name}"] = {m: label_accuracy(export, data / f"{m}.jsonl", out / "eval" / name / m, out)
                                    for m in ("image", "audio")}
    report["logistic regression"] = {m: logistic_baseline(data / f"{m}.jsonl", args.preset) for m in ("image", "audio")}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
