"""benchmarks/accelerator_check.py runs on the CPU at tiny size and writes its JSON and
Markdown; FSDP2 halves the per-rank parameter, gradient and optimizer memory at 2 ranks."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_accelerator_check_on_cpu_writes_json_and_markdown(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "accelerator_check.py"),
            "--device",
            "cpu",
            "--presets",
            "tiny",
            "--modalities",
            "fmri",
            "image",
            "--modes",
            "fp32",
            "bf16-mixed",
            "--steps",
            "3",
            "--batch",
            "2",
            "--fsdp-memory",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "accelerator_check.json").read_text())
    assert [(r["modality"], r["mode"]) for r in report["steps"]] == [
        ("fmri", "fp32"),
        ("fmri", "bf16-mixed"),
        ("image", "fp32"),
        ("image", "bf16-mixed"),
    ]
    for row in report["steps"]:
        assert row["flops_per_step"] > 0 and 0 < row["mfu"] < 1 and row["samples_per_s"] > 0
        assert math.isfinite(row["last_loss"]) and row["last_loss"] < row["first_loss"]
    assert report["generation_tokens_per_s"]["tiny"] > 0
    one, two = report["fsdp_memory"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert 0.45 < two["total_mb"] / one["total_mb"] < 0.55  # each rank holds half
    table = (tmp_path / "accelerator_check.md").read_text()
    assert "| tiny | image | bf16-mixed |" in table and "FSDP ranks" in table
