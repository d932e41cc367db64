"""Helpers of the training tests that run `onellm fit` in real subprocesses: a synthetic
world of tiny-preset inputs, a stage config over it, a run and its logged losses."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from onellm.config import OneLLMConfig
from onellm.data.manifest import Sample, write_manifest
from onellm.registry import get_modality

WORDS = ["dark", "bright"]


def write_world(root: Path, per_modality: int = 24) -> Path:
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
            samples.append(
                Sample(
                    f"{m}-{i}",
                    m,
                    [f"{m}/{i}.npy"],
                    caption=f"a {WORDS[label]} {m}",
                    qa=[{"question": "Is it bright?", "answer": "yes" if label else "no"}],
                    split=split,
                )
            )
        write_manifest(data / f"{m}.jsonl", samples)
    # The audio-visual scene: each sample the video and the audio of the same index.
    write_manifest(
        data / "audiovisual.jsonl",
        [
            Sample(
                f"av-{i}",
                "video+audio",
                [],
                caption=f"a {WORDS[i % 2]} video with a {WORDS[i % 2]} sound",
                qa=[{"question": "Is it bright?", "answer": "yes" if i % 2 else "no"}],
                split="val" if i >= per_modality - 4 else "train",
                inputs=[{"modality": m, "files": [f"{m}/{i}.npy"]} for m in ("video", "audio")],
            )
            for i in range(per_modality)
        ],
    )
    return data


def losses(log_dir: Path) -> list[tuple[int, float]]:
    with open(log_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [(int(r["step"]), float(r["train/loss"])) for r in rows]


KILLER = '''
import os, signal
from lightning.pytorch.callbacks import Callback

class KillAt(Callback):
    """kill -9 of the whole job (every rank at once, as a scheduler's preemption) just before
    the optimizer step `step`; no cleanup runs."""
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.killpg(0, signal.SIGKILL)
'''


def entry(data: Path, name: str, modality: str, streamed: bool) -> dict:
    if streamed:
        return {"streamed": str(data.parent / "streamed" / name), "modality": modality}
    return {"manifest": str(data / f"{name}.jsonl"), "modality": modality}


def stage_config(tmp: Path, data: Path, steps: int, every: int, batch_size: int, streamed: tuple = ()) -> Path:
    config = {
        "model": {"model": "tiny", "modalities": ["image", "audio", "fmri", "video"], "lr": 2e-3, "warmup_steps": 2},
        # Single inputs and video+audio samples (two inputs each) interleaved batch by batch.
        "data": {
            "batch_size": batch_size,
            "seed": 3,
            "datasets": [
                *(entry(data, m, m, m in streamed) for m in ("image", "audio", "fmri")),
                entry(data, "audiovisual", "video+audio", "audiovisual" in streamed),
            ],
        },
        "checkpoint": {"every_n_train_steps": every},
        "trainer": {
            "max_steps": steps,
            "log_every_n_steps": 1,
            "limit_val_batches": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "accelerator": "cpu",
        },
    }
    path = tmp / "stage.yaml"
    path.write_text(yaml.safe_dump(config))
    (tmp / "killer.py").write_text(KILLER)
    return path


def fit_run(
    tmp: Path,
    config: Path,
    name: str,
    kill_at: int | None = None,
    resume: bool = False,
    devices: int = 1,
    extra: tuple[str, ...] = (),
    expect: int | None = None,
) -> subprocess.CompletedProcess:
    """`onellm fit` of `config` in runs/<name>, with the `extra` arguments; asserts the exit
    status `expect` (by default -9 when killed, else 0)."""
    args = [
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        f"runs/{name}",
        "--trainer.logger",
        "onellm.training.logs.ResumableCSVLogger",
        "--trainer.logger.save_dir",
        "runs",
        "--trainer.logger.name",
        name,
        "--trainer.logger.version",
        "csv",
    ]
    if devices > 1:
        args += ["--trainer.devices", str(devices), "--trainer.strategy", "ddp_find_unused_parameters_true"]
    if kill_at is not None:
        kill = tmp / f"kill{kill_at}.yaml"
        kill.write_text(
            yaml.safe_dump(
                {"trainer": {"callbacks": [{"class_path": "killer.KillAt", "init_args": {"step": kill_at}}]}}
            )
        )
        args += ["--config", str(kill)]
    if resume:
        args += ["--ckpt_path", str(tmp / "runs" / name / "csv" / "checkpoints" / "last.ckpt")]
    args += extra
    # The test plugins in tmp, and onellm from wherever the tests import it.
    path = os.pathsep.join([str(tmp), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    # A session of its own: the kill takes down the job's process group, not pytest.
    out = subprocess.run(
        [sys.executable, "-m", "onellm.cli", *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        start_new_session=True,
    )
    expected = expect if expect is not None else -9 if kill_at is not None else 0
    assert out.returncode == expected, out.stderr[-4000:]
    return out


def quiet_trainer(max_steps: int, root: Path):
    """A one-process CPU Trainer that trains `max_steps` steps and writes nothing but what the
    module's callbacks write under `root`: no logger, validation, checkpoint, bar or summary."""
    import lightning as L

    return L.Trainer(
        max_steps=max_steps,
        logger=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=root,
    )
