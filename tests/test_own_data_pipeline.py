"""Your own files end to end, by the commands of docs/own-data.md: a folder and a table with
a split column -> `data convert tsv` -> `data check` -> `fit` -> `eval --manifest` ->
`caption` of a held-out file, with the prompting the export recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from onellm.cli import main
from onellm.data.manifest import read_manifest

pytestmark = pytest.mark.slow  # the own-data commands end to end

SHAPES = {"square": lambda y, x: (abs(x) < 0.5) & (abs(y) < 0.5), "disc": lambda y, x: x * x + y * y < 0.36}


def _write_photos(root: Path, per_class: int = 10) -> Path:
    """photos/<shape>-<i>.png drawn in a random colour at a random place, and table.csv."""
    rng = np.random.default_rng(0)
    (root / "photos").mkdir(parents=True)
    rows = ["path,caption,split"]
    yy, xx = np.mgrid[-1:1:32j, -1:1:32j]
    for shape, inside in SHAPES.items():
        for i in range(per_class):
            dy, dx = rng.uniform(-0.3, 0.3, 2)
            pixels = np.full((32, 32, 3), 255, np.uint8)
            pixels[inside(yy - dy, xx - dx)] = rng.integers(0, 200, 3)
            Image.fromarray(pixels).save(root / "photos" / f"{shape}-{i}.png")
            split = "test" if i >= per_class - 2 else "validation" if i == per_class - 3 else "train"
            rows.append(f"photos/{shape}-{i}.png,a drawing of a {shape},{split}")
    (root / "table.csv").write_text("\n".join(rows) + "\n")
    return root


def test_own_files_convert_check_train_evaluate_and_caption(tmp_path, capsys):
    data = _write_photos(tmp_path / "my_data")
    manifest = data / "image.jsonl"
    assert (
        main(
            [
                "data",
                "convert",
                "tsv",
                str(data / "table.csv"),
                "--modality",
                "image",
                "--media-root",
                str(data),
                "--out",
                str(manifest),
            ]
        )
        == 0
    )
    splits = [s.split for s in read_manifest(manifest)]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (14, 2, 4)
    assert main(["data", "check", str(manifest)]) == 0

    config = tmp_path / "stage1.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"model": "tiny", "modalities": ["image"], "lr": 1e-3, "export_dir": "runs/own/export"},
                "data": {
                    "data_root": str(data),
                    "batch_size": 4,
                    "datasets": [{"manifest": "$DATA_ROOT/image.jsonl", "modality": "image"}],
                },
                "trainer": {
                    "max_steps": 6,
                    "enable_progress_bar": False,
                    "logger": False,
                    "val_check_interval": 3,
                    "check_val_every_n_epoch": None,
                },
            }
        )
    )
    fit = subprocess.run(
        [sys.executable, "-m", "onellm.cli", "fit", "--config", str(config), "--threads", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    export = tmp_path / "runs" / "own" / "export"
    assert json.loads((export / "config.json").read_text())["prompting"] == "bare"  # trained on captions

    out = tmp_path / "eval"
    assert (
        main(["eval", "--model", str(export), "--manifest", str(manifest), "--out", str(out), "--max-new-tokens", "8"])
        == 0
    )
    results = json.loads((out / "manifest-caption-image" / "results.json").read_text())
    assert results["prompting"] == "bare"
    assert results["metrics"]["label_chance"] == 0.5
    assert len((out / "manifest-caption-image" / "predictions.jsonl").read_text().splitlines()) == 4

    capsys.readouterr()
    held_out = data / "photos" / "disc-9.png"
    assert main(["caption", "--model", str(export), "--max-new-tokens", "8", str(held_out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    file, modality, text = line.split("\t")
    assert (file, modality) == (str(held_out), "image") and text.strip()
