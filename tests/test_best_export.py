"""The export holds the weights of the best validation, not the last step's."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training import _onellm
from training_helpers import write_world as _write_world


@pytest.mark.slow
def test_export_is_the_best_validated_checkpoint(tmp_path):
    data = _write_world(tmp_path, per_modality=16)
    config = {
        "model": {"model": "tiny", "modalities": ["image"], "lr": 3e-3, "export_dir": "runs/best/export"},
        "data": {"batch_size": 4, "datasets": [{"manifest": str(data / "image.jsonl"), "modality": "image"}]},
        "checkpoint": {"every_n_train_steps": 100},
        "trainer": {
            "max_steps": 12,
            "val_check_interval": 3,
            "check_val_every_n_epoch": None,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": "runs/best",
            "logger": {
                "class_path": "onellm.training.logs.ResumableCSVLogger",
                "init_args": {"save_dir": "runs", "name": "best", "version": "csv"},
            },
        },
    }
    (tmp_path / "stage.yaml").write_text(yaml.safe_dump(config))
    out = _onellm(["fit", "--config", "stage.yaml"], tmp_path)
    said = re.search(
        r"export: the weights of step (\d+) \(val/loss ([0-9.]+), the best of the run", out.stdout + out.stderr
    )
    assert said, (out.stdout + out.stderr)[-2000:]
    with open(tmp_path / "runs" / "best" / "csv" / "metrics.csv") as f:
        rows = [line.split(",") for line in f.read().splitlines()]
    column, step = rows[0].index("val/loss"), rows[0].index("step")
    validated = {int(r[step]): float(r[column]) for r in rows[1:] if r[column]}
    assert len(validated) == 4  # steps 3, 6, 9, 12
    best_step = min(validated, key=validated.get)
    # Lightning's step counter stands one past the validated step in the checkpoint it writes there
    assert abs(int(said.group(1)) - (best_step + 1)) <= 1
    assert abs(float(said.group(2)) - validated[best_step]) < 1e-3
    best = torch.load(next((tmp_path / "runs" / "best" / "csv" / "checkpoints").glob("best*.ckpt")), weights_only=True)
    exported = load_file(tmp_path / "runs" / "best" / "export" / "onellm.safetensors")
    trained = {k.removeprefix("model."): v for k, v in best["state_dict"].items() if not k.startswith("model.llm.")}
    assert trained and all(torch.equal(exported[k], v) for k, v in trained.items())
    # and it is not simply the last step's model when the best came earlier
    last = torch.load(tmp_path / "runs" / "best" / "csv" / "checkpoints" / "last.ckpt", weights_only=True)
    if best_step != max(validated):
        assert any(
            not torch.equal(exported[k.removeprefix("model.")], v)
            for k, v in last["state_dict"].items()
            if k.removeprefix("model.") in exported
        )
