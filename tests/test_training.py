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
import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import fit_run, losses, quiet_trainer, stage_config, write_world

from onellm.data.streamed import write_streamed
from onellm.training.callbacks import BadSamples, TooManyBadSamples
from onellm.training.datamodule import OneLLMDataModule
from onellm.training.module import OneLLMModule

pytestmark = pytest.mark.slow  # multi-stage, kill -9 and 2-process DDP training runs

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted((ROOT / "data_recipes" / "tiny-synth").glob("stage*.yaml"))


def _onellm(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-m", "onellm.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def test_every_stage_runs_and_frozen_weights_stay(tmp_path):
    write_world(tmp_path)
    for config in STAGES:
        _onellm(
            [
                "fit",
                "--config",
                str(config),
                "--trainer.max_steps",
                "3",
                "--trainer.limit_val_batches",
                "0",
                "--trainer.enable_progress_bar",
                "false",
                "--data.batch_size",
                "4",
            ],
            tmp_path,
        )
    exports = [tmp_path / "runs" / f"stage{i}" / "export" for i in range(1, 6)]
    configs = [json.loads((e / "config.json").read_text()) for e in exports]
    assert [len(c["modalities"]) for c in configs] == [1, 4, 8, 8, 8]
    weights = [load_file(e / "onellm.safetensors") for e in exports]
    encoder = [k for k in weights[0] if k.startswith("encoder.")]
    assert encoder
    for before, after in zip(weights, weights[1:]):
        assert all(torch.equal(before[k], after[k]) for k in encoder)  # frozen, bit for bit
    upm = [k for k in weights[0] if k.startswith("upm.") and k in weights[1]]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in upm)  # trained
    record = json.loads((tmp_path / "runs" / "stage2" / "csv" / "rank0.json").read_text())
    assert len(record["steps"]) == 3
    audio_visual = json.loads((tmp_path / "runs" / "stage5" / "csv" / "rank0.json").read_text())
    assert "video+audio" in {modality for _, modality in audio_visual["steps"]}
    saved = yaml.safe_load((tmp_path / "runs" / "stage1" / "csv" / "config.yaml").read_text())
    assert saved["trainer"]["plugins"] == [{"class_path": "onellm.training.checkpoint_io.AtomicCheckpointIO"}]


def test_replay_share_and_no_replay_switch(tmp_path):
    write_world(tmp_path)
    common = ["--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false", "--data.batch_size", "4"]
    _onellm(["fit", "--config", str(STAGES[0]), "--trainer.max_steps", "2", *common], tmp_path)
    shares = {}
    for replay in ("0", "0.25"):
        # No logger at all and one thread: both used to fail or be impossible.
        _onellm(
            [
                "fit",
                "--config",
                str(STAGES[1]),
                "--trainer.max_steps",
                "48",
                "--data.replay",
                replay,
                "--trainer.logger",
                "false",
                "--threads",
                "1",
                "--model.export_dir",
                "null",
                "--trainer.default_root_dir",
                f"runs/replay{replay}",
                *common,
            ],
            tmp_path,
        )
        record = json.loads((tmp_path / "runs" / f"replay{replay}" / "rank0.json").read_text())
        steps = [m for _, m in record["steps"]]
        assert len(steps) == 48
        shares[replay] = steps.count("image") / len(steps)
    assert shares["0"] == 0.0
    assert 0.1 <= shares["0.25"] <= 0.45  # 48 draws of p = 0.25


def _resume_matches(
    tmp: Path, steps: int, every: int, kills: list[int], devices: int, streamed: tuple = ()
) -> list[dict]:
    data = write_world(tmp, per_modality=16)
    (data / "image" / "1.npy").write_bytes(b"\x93NUMPY broken")  # skipped, and remembered across kills
    for name in streamed:  # packed as `onellm data shards` does; the broken file goes in too
        write_streamed(data / f"{name}.jsonl", data.parent / "streamed" / name, chunk_bytes="100kB")
    config = stage_config(tmp, data, steps, every, batch_size=4 // devices, streamed=streamed)
    fit_run(tmp, config, "full", devices=devices)
    full = losses(tmp / "runs" / "full" / "csv")
    assert [s for s, _ in full] == list(range(steps))
    for i, kill in enumerate(kills):
        fit_run(tmp, config, "killed", kill_at=kill, resume=i > 0, devices=devices)
        ckpt_dir = tmp / "runs" / "killed" / "csv" / "checkpoints"
        assert not list(ckpt_dir.glob(".*.tmp"))  # atomic writes leave no partial files
        # Metrics up to the last checkpoint are on disk although the process died unflushed.
        logged = {s for s, _ in losses(tmp / "runs" / "killed" / "csv")}
        assert set(range(kill // every * every)) <= logged
    fit_run(tmp, config, "killed", resume=True, devices=devices)
    resumed = losses(tmp / "runs" / "killed" / "csv")
    # One row per step, the first ones from before the kills, each loss the uninterrupted run's.
    assert [s for s, _ in resumed] == list(range(steps))
    assert resumed == full
    bad = [(tmp / "runs" / name / "csv" / "bad_samples.jsonl").read_text() for name in ("full", "killed")]
    assert "image-1" in bad[0] and bad[1] == bad[0]
    ckpts = sorted(p.name for p in (tmp / "runs" / "killed" / "csv" / "checkpoints").glob("*.ckpt"))
    assert all(name.startswith("epoch=0-") for name in ckpts if name != "last.ckpt"), ckpts
    return [json.loads((tmp / "runs" / "killed" / "csv" / f"rank{r}.json").read_text()) for r in range(devices)]


def test_kill_9_at_any_step_resumes_to_the_same_losses(tmp_path):
    # 20 steps, a checkpoint every 4: killed in the first half between checkpoints (step 6,
    # resumed from 4), again after resuming (step 13, from 12), then run to the end.
    _resume_matches(tmp_path, steps=20, every=4, kills=[6, 13], devices=1)


def test_kill_9_under_two_process_ddp_resumes_to_the_same_losses(tmp_path):
    records = _resume_matches(tmp_path, steps=12, every=4, kills=[6], devices=2)
    assert len(records[0]["steps"]) == 12 and "video+audio" in {m for _, m in records[0]["steps"]}
    assert records[0]["steps"] == records[1]["steps"]
    assert records[0]["trained_weights_sha256"] == records[1]["trained_weights_sha256"]


def test_kill_9_under_two_process_ddp_over_streamed_shards_resumes_to_the_same_losses(tmp_path):
    # Image and video+audio stream from litdata chunks (several per split), audio and fMRI
    # from manifests in memory, in one stage; killed mid-pass and resumed.
    records = _resume_matches(tmp_path, steps=12, every=4, kills=[6], devices=2, streamed=("image", "audiovisual"))
    assert {"image", "video+audio"} <= {m for _, m in records[0]["steps"]}
    assert records[0]["steps"] == records[1]["steps"]
    assert records[0]["trained_weights_sha256"] == records[1]["trained_weights_sha256"]
    assert len(list((tmp_path / "data" / "streamed" / "image" / "train").glob("chunk-*.bin"))) > 1


def _fit_losses(tmp: Path, name: str, datasets: list[dict]) -> tuple[list[tuple[int, float]], list[str]]:
    L.seed_everything(0)
    module = OneLLMModule(model="tiny", modalities=["image", "audio"], lr=1e-3)
    trainer = L.Trainer(
        max_steps=6,
        val_check_interval=3,
        check_val_every_n_epoch=None,
        log_every_n_steps=1,
        logger=L.pytorch.loggers.CSVLogger(tmp, name=name, version="v"),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, OneLLMDataModule(datasets, batch_size=4, seed=1, model=module.model))
    with open(tmp / name / "v" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val = sorted(k for r in rows for k, v in r.items() if k.startswith("val/") and v)
    return losses(tmp / name / "v"), [f"{k}={r[k]}" for r in rows for k in val if r.get(k)]


def test_streamed_entries_train_and_validate_exactly_as_manifests(tmp_path):
    data = write_world(tmp_path, per_modality=12)
    for m in ("image", "audio"):
        write_streamed(data / f"{m}.jsonl", tmp_path / "streamed" / m, chunk_bytes="100kB")
    manifests = [{"manifest": str(data / f"{m}.jsonl"), "modality": m} for m in ("image", "audio")]
    streamed = [{"streamed": str(tmp_path / "streamed" / m), "modality": m} for m in ("image", "audio")]
    held, held_val = _fit_losses(tmp_path, "manifest", manifests)
    got, got_val = _fit_losses(tmp_path, "streamed", streamed)
    assert [s for s, _ in got] == list(range(6))
    assert got == held  # same samples, same inputs, same order: the same losses
    assert got_val and got_val == held_val  # validated on the streamed val/ split


def test_bad_samples_are_skipped_and_counted(tmp_path):
    data = write_world(tmp_path, per_modality=12)
    rows = (data / "image.jsonl").read_text().splitlines()
    (data / "image" / "0.npy").write_bytes(b"not an array")
    (data / "image" / "2.npy").unlink()
    module = OneLLMModule(model="tiny", modalities=["image"], lr=1e-3)
    dm = OneLLMDataModule(
        [{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=4, model=module.model
    )
    trainer = L.Trainer(
        max_steps=6,
        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="bad", version="v"),
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, dm)
    bad = _bad_samples(trainer)
    assert len(rows) == 12
    assert set(bad) == {"image-0", "image-2"}
    assert "0.npy" in bad["image-0"] and "no such file" in bad["image-2"]
    logged = [json.loads(line) for line in (tmp_path / "bad" / "v" / "bad_samples.jsonl").read_text().splitlines()]
    assert {r["id"] for r in logged} == {"image-0", "image-2"}


def _bad_samples(trainer: L.Trainer) -> dict[str, str]:
    """The run's unreadable samples, as the module's BadSamples callback recorded them."""
    return next(cb for cb in trainer.callbacks if isinstance(cb, BadSamples)).samples


def test_too_many_bad_samples_stop_training(tmp_path):
    data = write_world(tmp_path, per_modality=40)
    for i in range(0, 40, 2):
        (data / "image" / f"{i}.npy").write_bytes(b"broken")
    module = OneLLMModule(model="tiny", modalities=["image"], max_bad_fraction=0.2)
    dm = OneLLMDataModule(
        [{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=8, model=module.model
    )
    trainer = quiet_trainer(20, tmp_path / "run")
    with pytest.raises(TooManyBadSamples, match=r"unreadable \(more than max_bad_fraction=0.2\): \d+ x not a readable"):
        trainer.fit(module, dm)
    # The aborted run still names every bad file it met.
    listed = [json.loads(line) for line in (tmp_path / "run" / "bad_samples.jsonl").read_text().splitlines()]
    assert listed and {r["id"] for r in listed} == set(_bad_samples(trainer))
    assert all(int(r["id"].split("-")[1]) % 2 == 0 and ".npy" in r["reason"] for r in listed)


def test_a_manifest_with_nothing_to_learn_is_refused_before_training(tmp_path):
    data = write_world(tmp_path, per_modality=4)
    rows = [json.loads(line) for line in (data / "image.jsonl").read_text().splitlines()]
    rows[1].pop("caption", None), rows[1].pop("qa", None)
    (data / "image.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    module = OneLLMModule(model="tiny", modalities=["image"])
    dm = OneLLMDataModule(
        [{"manifest": str(data / "image.jsonl"), "modality": "image"}], batch_size=2, model=module.model
    )
    trainer = L.Trainer(
        max_steps=2,
        logger=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    with pytest.raises(ValueError, match=r"image\.jsonl: 1 sample\(s\), e\.g\. image-1, have no caption"):
        trainer.fit(module, dm)
