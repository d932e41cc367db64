"""FSDP2 (`--trainer.strategy fsdp2`) over 2 gloo processes on the CPU: the same losses as
DDP, sharded checkpoints that resume exactly, an ordinary export, and a rank whose batch
is all bad files does not hang the others."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import fit_run, losses, stage_config, write_world

from onellm.model.modality_batch import ModalityBatch
from onellm.model.onellm import OneLLM

# A collective that waits longer than this fails the run instead of hanging the test.
FSDP = (
    "--trainer.strategy",
    "onellm.training.sharding.FSDP2",
    "--trainer.strategy.timeout_s",
    "120",
    "--threads",
    "1",
    "--seed_everything",
    "0",
)
DDP = ("--threads", "1", "--seed_everything", "0")


def _stage(tmp: Path, steps: int, every: int) -> Path:
    """Two stages' worth: a first export of image and audio to replay, then a stage growing it
    by fmri and video+audio with a replay share, 2 samples per rank."""
    data = write_world(tmp, per_modality=16)
    config = stage_config(tmp, data, steps, every, batch_size=2)
    spec = yaml.safe_load(config.read_text())
    spec["model"].update(
        {"init_from": str(tmp / "first"), "export_dir": None, "modalities": ["image", "audio", "fmri", "video"]}
    )
    spec["data"]["replay"] = 0.3
    config.write_text(yaml.safe_dump(spec))
    first = OneLLM.from_preset("tiny")
    first.config.modalities = {m: first.config.modalities[m] for m in ("image", "audio")}
    OneLLM(first.config).save_pretrained(tmp / "first")
    return config


def _logits(export: Path) -> torch.Tensor:
    model = OneLLM.from_pretrained(export).eval()
    batch = model.processor([model.processor.request(["image"], None, prompting="bare")])
    image = torch.linspace(-1, 1, 3 * 56 * 56).reshape(1, 3, 56, 56)
    with torch.no_grad():
        return model(**batch, inputs=ModalityBatch.single("image", image)).logits


def test_fsdp_trains_as_ddp_resumes_exactly_and_exports_the_same_model(tmp_path):
    config = _stage(tmp_path, steps=10, every=5)
    fit_run(tmp_path, config, "ddp", devices=2, extra=(*DDP, "--model.export_dir", "ddp_export"))
    # kill -9 of both ranks at step 7, after the sharded checkpoint of step 5; the log is
    # written every step, so steps 5 and 6 are logged before the kill and again after it.
    flush = ("--trainer.logger.flush_logs_every_n_steps", "1")
    fit_run(tmp_path, config, "fsdp", kill_at=7, devices=2, extra=(*FSDP, *flush))
    log = tmp_path / "runs" / "fsdp" / "csv"
    before = dict(losses(log))
    assert sorted(before) == list(range(7))
    assert (log / "checkpoints" / "last.ckpt" / ".metadata").is_file()  # distributed checkpoint: a directory
    fit_run(tmp_path, config, "fsdp", resume=True, devices=2, extra=(*FSDP, "--model.export_dir", "fsdp_export"))
    ddp, fsdp = losses(tmp_path / "runs" / "ddp" / "csv"), losses(log)
    assert [s for s, _ in fsdp] == [s for s, _ in ddp] == list(range(10))
    assert [before[s] for s in (5, 6)] == [dict(fsdp)[s] for s in (5, 6)]  # resumed exactly
    assert [loss for _, loss in fsdp] == pytest.approx([loss for _, loss in ddp], rel=1e-4)
    records = [json.loads((log / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len({m for _, m in records[0]["steps"]}) >= 2 and records[0]["steps"] == records[1]["steps"]
    assert records[0]["trained_weights_sha256"] == records[1]["trained_weights_sha256"]
    # The export of the sharded run is an ordinary folder, and the same model as DDP's.
    torch.testing.assert_close(
        _logits(tmp_path / "fsdp_export"), _logits(tmp_path / "ddp_export"), rtol=1e-4, atol=1e-4
    )


def test_a_rank_with_an_all_bad_batch_runs_the_step_and_lora_exports(tmp_path):
    """One sample per rank and every other image unreadable: some steps find one rank's
    batch all bad, and that rank runs an idle step instead of leaving the other waiting.
    In bf16-mixed (parameters gathered in bf16, gradients reduced in fp32), with LoRA and
    gradient checkpointing."""
    data = write_world(tmp_path, per_modality=16)
    for i in range(0, 16, 2):
        (data / "image" / f"{i}.npy").write_bytes(b"\x93NUMPY broken")
    config = stage_config(tmp_path, data, steps=10, every=5, batch_size=1)
    spec = yaml.safe_load(config.read_text())
    spec["model"].update(
        {
            "max_bad_fraction": 1.0,
            "export_dir": "lora_export",
            "lora": {"r": 4, "merge": False},
            "gradient_checkpointing": True,
            "modalities": ["image", "fmri"],
        }
    )
    spec["data"]["datasets"] = [d for d in spec["data"]["datasets"] if d["modality"] in ("image", "fmri")]
    # Validated every 4 steps, the export takes the best validation's (sharded) checkpoint.
    spec["trainer"].update({"limit_val_batches": 4, "val_check_interval": 4, "check_val_every_n_epoch": None})
    config.write_text(yaml.safe_dump(spec))
    out = fit_run(tmp_path, config, "bad", devices=2, extra=(*FSDP, "--trainer.precision", "bf16-mixed"))
    assert re.search(r"export: the weights of step \d+ \(val/loss", out.stdout + out.stderr)
    assert (tmp_path / "runs" / "bad" / "csv" / "checkpoints" / "best.ckpt" / ".metadata").is_file()
    logged = [loss for _, loss in losses(tmp_path / "runs" / "bad" / "csv")]
    assert logged and all(math.isfinite(loss) for loss in logged)
    records = [json.loads((tmp_path / "runs" / "bad" / "csv" / f"rank{r}.json").read_text()) for r in (0, 1)]
    ran = [{s for s, _ in r["steps"]} for r in records]
    assert ran[0] ^ ran[1]  # steps that only one rank had readable data for
    assert ran[0] | ran[1] <= set(range(10))
    model = OneLLM.from_pretrained(tmp_path / "lora_export")
    assert model.lora is not None and model.lora.r == 4
    trained = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    assert trained and all(p.abs().sum() > 0 for p in trained)  # zeros at the start, trained since
    assert torch.isfinite(_logits(tmp_path / "lora_export")).all()


def _mixed_rank(rank: int, init: str, out: str) -> None:
    from datetime import timedelta

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from onellm.config import OneLLMConfig
    from onellm.training.sharding import shard, step_modalities

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    model = OneLLM(OneLLMConfig.from_preset("tiny"))
    shard(model, init_device_mesh("cpu", (2,)), "32-true", torch.device("cpu"))
    # Rank 0 holds an image, rank 1 a video with its sound: different modules per rank.
    held = [("image",)] if rank == 0 else [("video", "audio")]
    inputs = ModalityBatch.of_samples([[(m, model.tokenizers[m].example_input(1)[0]) for m in held[0]]])
    text = model.processor([model.processor.placeholders(list(held[0]))], answers=["a caption"])
    step = step_modalities(model, inputs.tensors, torch.device("cpu"))
    idle = [m for m in step if m not in inputs.tensors]
    model(**text, inputs=inputs, loss_only=True, idle=idle).loss.backward()
    torch.save({"step": step, "idle": idle}, Path(out) / f"{rank}.pt")
    dist.destroy_process_group()


def test_ranks_whose_batches_hold_different_modalities_run_the_same_modules(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    # The spawned ranks unpickle this file's function as tests.test_sharding, on this process's sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))

    mp.spawn(_mixed_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2, join=True)
    done = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    assert done[0]["step"] == done[1]["step"] == ["image", "video", "audio"]
    assert done[0]["idle"] == ["video", "audio"] and done[1]["idle"] == ["image"]
