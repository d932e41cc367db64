"""Progressive training through the Lightning CLI and module: every stage config runs,
frozen weights stay put, kill-and-resume matches an uninterrupted run, bad samples are
skipped and counted, and 2-process DDP agrees on modalities and weights."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from onellm.config import OneLLMConfig
from onellm.data.manifest import Sample, write_manifest
from onellm.registry import get_modality
from onellm.training.checkpoint_io import AtomicCheckpointIO
from onellm.training.datamodule import OneLLMDataModule
from onellm.training.module import OneLLMModule

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted((ROOT / "data_recipes" / "tiny-synth").glob("stage*.yaml"))
WORDS = ["dark", "bright"]


def _write_world(root: Path, per_modality: int = 24) -> Path:
    """Preprocessed .npy inputs of the tiny preset's shapes whose caption names their sign."""
    config = OneLLMConfig.from_preset("tiny")
    rng = np.random.default_rng(0)
    data = root / "data" / "synth"
    for m, options in config.modalities.items():
        shape = get_modality(m).tokenizer.from_options(config.encoder, options).input_shape
        (data / m).mkdir(parents=True)
        samples = []
        for i in range(per_modality):
            label = i % 2
            x = rng.normal(size=shape).astype(np.float32) * 0.5 + (1.0 if label else -1.0)
            np.save(data / m / f"{i}.npy", x)
            split = "val" if i >= per_modality - 4 else "train"
            samples.append(Sample(f"{m}-{i}", m, [f"{m}/{i}.npy"], caption=f"a {WORDS[label]} {m}",
                                  qa=[{"question": "Is it bright?", "answer": "yes" if label else "no"}],
                                  split=split))
        write_manifest(data / f"{m}.jsonl", samples)
    return data


def _onellm(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "onellm.cli", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def test_every_stage_runs_and_frozen_weights_stay(tmp_path):
    _write_world(tmp_path)
    for config in STAGES:
        _onellm(["fit", "--config", str(config), "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0",
                 "--trainer.enable_progress_bar", "false", "--data.batch_size", "4"], tmp_path)
    exports = [tmp_path / "runs" / f"stage{i}" / "export" for i in range(1, 5)]
    configs = [json.loads((e / "config.json").read_text()) for e in exports]
    assert [len(c["modalities"]) for c in configs] == [1, 4, 8, 8]
    weights = [load_file(e / "onellm.safetensors") for e in exports]
    encoder = [k for k in weights[0] if k.startswith("encoder.")]
    assert encoder
    for before, after in zip(weights, weights[1:]):
        assert all(torch.equal(before[k], after[k]) for k in encoder)  # frozen, bit for bit
    upm = [k for k in weights[0] if k.startswith("upm.") and k in weights[1]]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in upm)  # trained
    record = json.loads((tmp_path / "runs" / "stage2" / "csv" / "rank0.json").read_text())
    assert len(record["steps"]) == 3
    saved = yaml.safe_load((tmp_path / "runs" / "stage1" / "csv" / "config.yaml").read_text())
    assert saved["trainer"]["plugins"] == [{"class_path": "onellm.training.checkpoint_io.AtomicCheckpointIO"}]


def _losses(log_dir: Path) -> list[tuple[int, float]]:
    with open(log_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [(int(r["step"]), float(r["train/loss"])) for r in rows]


class _Crash(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def _fit(tmp: Path, data: Path, name: str, steps: int, ckpt: str | None = None, crash_at: int | None = None) -> Path:
    L.seed_everything(0)
    module = OneLLMModule(model="tiny", modalities=["image", "audio", "fmri"], lr=2e-3, warmup_steps=2)
    entries = [{"manifest": str(data / f"{m}.jsonl"), "modality": m} for m in ("image", "audio", "fmri")]
    dm = OneLLMDataModule(entries, batch_size=4, seed=3)
    logger = L.pytorch.loggers.CSVLogger(tmp, name=name, version="v")
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp / name / "ckpt", save_last=True, every_n_train_steps=1)]
    if crash_at is not None:
        callbacks.append(_Crash(crash_at))
    trainer = L.Trainer(max_steps=steps, logger=logger, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
                        log_every_n_steps=1, limit_val_batches=0, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    try:
        trainer.fit(module, dm, ckpt_path=ckpt)
    except RuntimeError as err:
        assert "simulated crash" in str(err)
    return tmp / name


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    data = _write_world(tmp_path, per_modality=16)
    full = _losses(_fit(tmp_path, data, "full", steps=8) / "v")
    crashed = _fit(tmp_path, data, "crashed", steps=8, crash_at=5)
    assert (crashed / "ckpt" / "last.ckpt").is_file()
    assert not list((crashed / "ckpt").glob(".*.tmp"))  # atomic writes leave no partial files
    resumed = _losses(_fit(tmp_path, data, "resumed", steps=8, ckpt=str(crashed / "ckpt" / "last.ckpt")) / "v")
    assert [s for s, _ in full] == list(range(8))
    assert [s for s, _ in resumed] == [5, 6, 7]
    for (step, loss), (_, expected) in zip(resumed, full[5:]):
        assert loss == pytest.approx(expected, rel=1e-5, abs=1e-6), step


def test_bad_samples_are_skipped_and_counted(tmp_path):
    data = _write_world(tmp_path, per_modality=12)
    rows = (data / "image.jsonl").read_text().splitlines()
    (data / "image" / "0.npy").write_bytes(b"not an array")
    (data / "image" / "2.npy").unlink()
    module = OneLLMModule(model="tiny", modalities=["image"], lr=1e-3)
    dm = OneLLMDataModule([{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=4)
    trainer = L.Trainer(max_steps=6, logger=L.pytorch.loggers.CSVLogger(tmp_path, name="bad", version="v"),
                        limit_val_batches=0, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(module, dm)
    assert len(rows) == 12
    assert set(module.bad_samples) == {"image-0", "image-2"}
    assert "0.npy" in module.bad_samples["image-0"] and "no such file" in module.bad_samples["image-2"]
    logged = [json.loads(line) for line in (tmp_path / "bad" / "v" / "bad_samples.jsonl").read_text().splitlines()]
    assert {r["id"] for r in logged} == {"image-0", "image-2"}


def test_ddp_two_processes_agree(tmp_path):
    _write_world(tmp_path, per_modality=24)
    _onellm(["fit", "--config", str(STAGES[1]), "--model.init_from", "null", "--trainer.max_steps", "4",
             "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
             "--data.batch_size", "2", "--trainer.strategy", "ddp_find_unused_parameters_true", "--trainer.accelerator", "cpu",
             "--trainer.devices", "2"], tmp_path, timeout=400)
    log_dir = tmp_path / "runs" / "stage2" / "csv"
    records = [json.loads((log_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(records[0]["steps"]) == 4
    assert records[0]["steps"] == records[1]["steps"]
    assert records[0]["trained_weights_sha256"] == records[1]["trained_weights_sha256"]


def test_too_many_bad_samples_stop_training(tmp_path):
    data = _write_world(tmp_path, per_modality=40)
    for i in range(0, 40, 2):
        (data / "image" / f"{i}.npy").write_bytes(b"broken")
    module = OneLLMModule(model="tiny", modalities=["image"], max_bad_fraction=0.2)
    dm = OneLLMDataModule([{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=8)
    trainer = L.Trainer(max_steps=20, logger=False, limit_val_batches=0, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=1)
    with pytest.raises(RuntimeError, match=r"unreadable \(more than max_bad_fraction=0.2\): \d+ x not a readable"):
        trainer.fit(module, dm)


def test_a_manifest_with_nothing_to_learn_is_refused_before_training(tmp_path):
    data = _write_world(tmp_path, per_modality=4)
    rows = [json.loads(line) for line in (data / "image.jsonl").read_text().splitlines()]
    rows[1].pop("caption", None), rows[1].pop("qa", None)
    (data / "image.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    module = OneLLMModule(model="tiny", modalities=["image"])
    dm = OneLLMDataModule([{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=2)
    trainer = L.Trainer(max_steps=2, logger=False, limit_val_batches=0, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=1)
    with pytest.raises(ValueError, match=r"image\.jsonl: 1 sample\(s\), e\.g\. image-1, have no caption"):
        trainer.fit(module, dm)
