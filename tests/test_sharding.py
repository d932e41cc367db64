"""FSDP2 (`--trainer.strategy fsdp2`) over 2 gloo processes on the CPU: the same losses as
DDP, sharded checkpoints that resume exactly, an ordinary export, and a rank whose batch
is all bad files does not hang the others."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from training_helpers import fit_run, losses, stage_config, write_world

from onellm.model.modality_batch import ModalityBatch
from onellm.model.onellm import OneLLM

# A collective that waits longer than this fails the run instead of hanging the test.
FSDP = ("--trainer.strategy", "onellm.training.sharding.FSDP2", "--trainer.strategy.timeout_s", "120",
        "--threads", "1", "--seed_everything", "0")
DDP = ("--threads", "1", "--seed_everything", "0")


def _stage(tmp: Path, steps: int, every: int) -> Path:
    """Two stages' worth: a first export of image and audio to replay, then a stage growing it
    by fmri and video+audio with a replay share, 2 samples per rank."""
    data = write_world(tmp, per_modality=16)
    config = stage_config(tmp, data, steps, every, batch_size=2)
    spec = yaml.safe_load(config.read_text())
    spec["model"].update({"init_from": str(tmp / "first"), "export_dir": None,
                          "modalities": ["image", "audio", "fmri", "video"]})
    spec["data"]["replay"] = 0.3
    config.write_text(yaml.safe_dump(spec))
    first = OneLLM.from_preset("tiny")
    first.config.modalities = {m: first.config.modalities[m] for m in ("image", "audio")}
    OneLLM(first.config).save_pretrained(tmp / "first")
    return config


def _logits(export: Path) -> torch.Tensor:
    model = OneLLM.from_pretrained(export).eval()
    batch = model.processor([model.processor.request(["image"], None, bare=True)])
    image = torch.linspace(-1, 1, 3 * 56 * 56).reshape(1, 3, 56, 56)
    with torch.no_grad():
        return model(**batch, inputs=ModalityBatch.single("image", image)).logits


def test_fsdp_trains_as_ddp_and_exports_the_same_model(tmp_path):
    config = _stage(tmp_path, steps=10, every=5)
    fit_run(tmp_path, config, "ddp", devices=2, extra=(*DDP, "--model.export_dir", "ddp_export"))
    fit_run(tmp_path, config, "fsdp", devices=2, extra=(*FSDP, "--model.export_dir", "fsdp_export"))
    ddp, fsdp = losses(tmp_path / "runs" / "ddp" / "csv"), losses(tmp_path / "runs" / "fsdp" / "csv")
    assert [s for s, _ in fsdp] == [s for s, _ in ddp] == list(range(10))
    assert [l for _, l in fsdp] == pytest.approx([l for _, l in ddp], rel=1e-4)
    records = [json.loads((tmp_path / "runs" / "fsdp" / "csv" / f"rank{r}.json").read_text()) for r in (0, 1)]
    modalities = {m for _, m in records[0]["steps"]}
    assert len(modalities) >= 2 and records[0]["steps"] == records[1]["steps"]
    # The sharded checkpoint is a distributed-checkpoint directory, the export a plain folder.
    assert (tmp_path / "runs" / "fsdp" / "csv" / "checkpoints" / "last.ckpt" / ".metadata").is_file()
    torch.testing.assert_close(_logits(tmp_path / "fsdp_export"), _logits(tmp_path / "ddp_export"),
                               rtol=1e-4, atol=1e-4)
