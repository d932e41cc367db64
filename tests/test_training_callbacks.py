"""Each training callback on its own, in a real Trainer over a toy module and hand-made
batches (the collate's form: ids, modality, inputs when a sample was readable, bad)."""

import csv
import hashlib
import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from onellm.config import Prompting
from onellm.data.dataset import BadSample
from onellm.model.onellm import OneLLM
from onellm.training.callbacks import (
    BadSamples,
    Export,
    LearningRate,
    RankRecord,
    RouterStatistics,
    Throughput,
    TooManyBadSamples,
)


class _Router(torch.nn.Module):
    """Stands in for the model's router statistics: the same two experts every time."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def router_statistics(self, reset: bool = False) -> dict:
        self.reads += reset
        return {"image": {"mean_weight": [0.25, 0.75], "tokens": 4}}


class Toy(L.LightningModule):
    """One weight; a batch without readable samples trains nothing, as OneLLMModule's."""

    def __init__(self, model=None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.model = model if model is not None else _Router()

    def training_step(self, batch, batch_idx):
        if "inputs" not in batch:
            return None
        return (self.weight**2).sum()

    def configure_optimizers(self):
        opt = torch.optim.SGD([self.weight], lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "name": "train/lr"}}


def batch(n: int, bad: int = 0, modality: str = "image") -> dict:
    out = {
        "ids": [f"s{n}-{i}" for i in range(2)],
        "modality": modality,
        "attention_mask": torch.ones(2, 5),
        "bad": [
            BadSample(f"b{n}-{i}", f"b{n}-{i}.npy: not a readable array", "not a readable array") for i in range(bad)
        ],
    }
    out["inputs"] = torch.zeros(2)
    return out


def unreadable(n: int) -> dict:
    return {"ids": [], "modality": "image", "bad": [BadSample(f"u{n}", f"u{n}.png: truncated", "truncated")]}


def fit(tmp_path, batches, callbacks, module=None, logger=True, datamodule=None):
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer = L.Trainer(
        max_steps=len(batches),
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="run", version="v") if logger else False,
        default_root_dir=tmp_path / "root",
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = module or Toy()
    if datamodule is not None:
        datamodule.train_dataloader = lambda: loader
        trainer.fit(module, datamodule=datamodule)
    else:
        trainer.fit(module, loader)
    return trainer, module


def logged(tmp_path) -> list[dict]:
    with open(tmp_path / "run" / "v" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_bad_samples_are_counted_listed_and_kept_across_a_checkpoint(tmp_path):
    bad = BadSamples(max_fraction=0.5)
    fit(tmp_path, [batch(0, bad=1), unreadable(1), batch(2)], [bad])
    assert set(bad.samples) == {"b0-0", "u1"} and bad.seen == 6
    assert bad.reasons == {"not a readable array": 1, "truncated": 1}
    listed = [json.loads(line) for line in (tmp_path / "run" / "v" / "bad_samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in listed] == ["b0-0", "u1"] and "truncated" in listed[1]["reason"]
    assert [float(r["data/bad_samples"]) for r in logged(tmp_path) if r.get("data/bad_samples")] == [1, 2, 2]

    checkpoint = {}
    bad.on_save_checkpoint(None, None, checkpoint)
    again = BadSamples()
    again.on_load_checkpoint(None, None, checkpoint)
    assert (again.samples, again.reasons, again.seen) == (bad.samples, bad.reasons, bad.seen)


def test_too_many_bad_samples_stop_the_run_and_name_the_files(tmp_path):
    batches = [batch(n, bad=2) for n in range(10)]  # half of every batch is unreadable
    with pytest.raises(TooManyBadSamples, match=r"16 of 32 samples drawn were unreadable.*max_bad_fraction=0.4"):
        fit(tmp_path, batches, [BadSamples(max_fraction=0.4)])
    listed = (tmp_path / "run" / "v" / "bad_samples.jsonl").read_text().splitlines()
    assert len(listed) == 16  # the eight batches drawn until the 32 draws the check waits for


def test_router_weights_are_read_and_logged_every_n_steps(tmp_path):
    _, module = fit(
        tmp_path, [batch(0), batch(1), unreadable(2), batch(3), batch(4)], [RouterStatistics(every_n_steps=2)]
    )
    # Steps 0 and 4 are read; step 2's batch was unreadable and trained nothing to read.
    assert module.model.reads == 2
    rows = logged(tmp_path)
    assert [float(r["router/image/expert1"]) for r in rows] == [0.75] * 5  # Lightning repeats a step's last value


def test_throughput_is_logged_from_the_second_trained_batch(tmp_path):
    fit(tmp_path, [batch(n) for n in range(4)], [Throughput()])
    rows = [r for r in logged(tmp_path) if r.get("throughput/samples_per_s")]
    assert len(rows) == 3 and all(float(r["throughput/samples_per_s"]) > 0 for r in rows)
    # Ten tokens (attention-mask positions) in every batch of two samples.
    assert [float(r["throughput/tokens_per_s"]) for r in rows] == pytest.approx(
        [5 * float(r["throughput/samples_per_s"]) for r in rows], rel=1e-5
    )


def test_learning_rate_is_logged_under_the_scheduler_name_and_quiet_without_a_logger(tmp_path):
    fit(tmp_path, [batch(n) for n in range(3)], [LearningRate()])
    rates = [float(r["train/lr"]) for r in logged(tmp_path) if r.get("train/lr")]
    assert rates == pytest.approx([0.1, 0.05, 0.1 / 3])
    fit(tmp_path / "quiet", [batch(0)], [LearningRate()], logger=False)  # LearningRateMonitor alone refuses


def test_rank_record_lists_the_trained_steps_and_the_weights_digest(tmp_path):
    record = RankRecord()
    _, module = fit(tmp_path, [batch(0), unreadable(1), batch(2, modality="audio")], [record])
    saved = json.loads((tmp_path / "run" / "v" / "rank0.json").read_text())
    # Lightning counts the unreadable batch's step too (the module returned no loss for it).
    assert saved["rank"] == 0 and saved["steps"] == [[0, "image"], [2, "audio"]]
    assert saved["trained_weights_sha256"] == hashlib.sha256().hexdigest()  # _Router has no parameters
    checkpoint = {}
    record.on_save_checkpoint(None, None, checkpoint)
    again = RankRecord()
    again.on_load_checkpoint(None, None, checkpoint)
    assert again.steps == [(0, "image"), (2, "audio")]


class _CaptionStage(L.LightningDataModule):
    prompting = Prompting.BARE


def test_export_saves_the_model_asked_as_its_data_trained(tmp_path):
    model = OneLLM.from_preset("tiny")
    assert model.config.prompting == Prompting.TEMPLATE
    fit(tmp_path, [batch(0)], [Export(tmp_path / "export")], module=Toy(model), datamodule=_CaptionStage())
    assert json.loads((tmp_path / "export" / "config.json").read_text())["prompting"] == "bare"
    again = OneLLM.from_pretrained(tmp_path / "export")
    assert again.config.prompting == Prompting.BARE and again.modalities == model.modalities
