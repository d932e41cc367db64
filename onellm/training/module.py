"""OneLLMModule: a OneLLM model as a LightningModule, with per-stage freezing by globs."""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
import torch

from ..config import OneLLMConfig, list_presets
from ..data.manifest import write_jsonl
from ..model.lora import LoRAConfig
from ..model.onellm import OneLLM
from . import sharding
from .logs import ResumableCSVLogger


class TooManyBadSamples(RuntimeError):
    """Training stopped because too much of the data could not be read."""


def build_stage_model(model: str, modalities: list[str] | None, init_from: str | None,
                      copy_from: str | None = None) -> OneLLM:
    """The model of one training stage.

    Without `init_from`: the preset or directory `model`, restricted to `modalities`.
    With it: the previous stage's export, grown by the `modalities` it lacks, whose
    tokenizer options come from `model` and whose UPM parts start as copies of `copy_from`'s
    (by default the export's first modality: image, as published).
    """
    if init_from is None:
        if Path(model).is_dir():
            net = OneLLM.from_pretrained(model)
            unknown = set(modalities or []) - set(net.modalities)
            if unknown:
                raise ValueError(f"{model} has no {sorted(unknown)}; grow it with init_from instead")
            return net
        config = OneLLMConfig.from_preset(model)
        if modalities:
            unknown = set(modalities) - set(config.modalities)
            if unknown:
                raise ValueError(f"preset {model!r} has no options for modalities {sorted(unknown)}")
            config.modalities = {m: config.modalities[m] for m in modalities}
        return OneLLM(config)
    net = OneLLM.from_pretrained(init_from)
    source = OneLLMConfig.from_preset(model).modalities if model in list_presets() else {}
    for m in modalities or []:
        if m not in net.modalities:
            net.add_modality(m, source.get(m), copy_from=copy_from)
    return net


class OneLLMModule(L.LightningModule):
    """Trains the parameters whose names match `trainable` (fnmatch globs, e.g. "upm.*");
    with no globs, the model's own defaults (encoder and LLM frozen unless its config says)."""

    def __init__(
        self,
        model: str = "tiny",
        modalities: list[str] | None = None,
        init_from: str | None = None,
        trainable: list[str] | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 0,
        export_dir: str | None = None,
        router_log_every: int = 10,
        max_bad_fraction: float = 0.1,
        lora: LoRAConfig | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        """`lora` (r > 0) trains low-rank adapters on the LM instead of leaving it frozen or
        training it whole; `gradient_checkpointing` recomputes the LM's and encoder's block
        activations in backward, trading compute for memory."""
        super().__init__()
        self.save_hyperparameters()
        self.model = build_stage_model(model, modalities, init_from)
        if lora is not None and lora.r:
            if self.model.lora is not None:
                raise ValueError(f"{init_from or model} already carries a LoRA adapter; merge it at its export "
                                 "(lora.merge: true) before adding another")
            adapters = self.model.add_lora(lora)
            total = sum(p.numel() for p in self.model.llm.parameters())
            rank_zero_info(f"LoRA r={lora.r} on {', '.join(lora.target_modules)}: {adapters:,} trainable LM parameters "
                  f"of {total:,}")
        if gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        # What an earlier stage taught: the data module's `replay` share goes to these.
        self.replayed_modalities = set(OneLLMConfig.from_file(Path(init_from) / "config.json").modalities) \
            if init_from else set()
        if trainable is not None:
            self._apply_trainable(trainable)
        # Frozen weights come from `init_from`/the preset again on resume, so checkpoints skip them.
        self.strict_loading = False
        self._step_start: float | None = None
        self._log_path: Path | None = None
        self.bad_samples: dict[str, str] = {}
        self.bad_reasons: Counter[str] = Counter()
        self.samples_seen = 0
        self.schedule: list[tuple[int, str]] = []

    def _apply_trainable(self, patterns: list[str]) -> None:
        used = set()
        for name, p in self.model.named_parameters():
            hits = [pat for pat in patterns if fnmatch.fnmatchcase(name, pat)]
            used.update(hits)
            p.requires_grad_(bool(hits))
        unused = [p for p in patterns if p not in used]
        if unused:
            raise ValueError(f"trainable pattern(s) {unused} match no parameter (names look like 'upm.experts.0.0.attention.wq.weight')")

    def _count_bad(self, batch: dict[str, Any], training: bool = False) -> bool:
        """Record unreadable samples; False when none of the batch was readable. Too many
        training draws unreadable stops training: a broken dataset should not train silently
        on what is left."""
        bad = batch.get("bad", [])
        for sample in bad:
            self.bad_samples.setdefault(sample.id, sample.reason)
        if training:
            self.bad_reasons.update(sample.problem.split(" (")[0] for sample in bad)
            self.samples_seen += len(bad) + len(batch.get("ids", []))
            failed = sum(self.bad_reasons.values())
            if self.samples_seen >= 32 and failed > self.hparams.max_bad_fraction * self.samples_seen:
                reasons = "; ".join(f"{n} x {r}" for r, n in self.bad_reasons.most_common(5))
                listed = self._write_bad_samples()
                raise TooManyBadSamples(
                    f"{failed} of {self.samples_seen} samples drawn were unreadable (more than "
                    f"max_bad_fraction={self.hparams.max_bad_fraction}): {reasons}; the files are listed in "
                    f"{listed}: fix or remove them (onellm data check), or raise --model.max_bad_fraction")
        return "inputs" in batch

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        readable = self._count_bad(batch, training=True)
        self.log("data/bad_samples", float(len(self.bad_samples)), batch_size=1)
        sharded = sharding.is_sharded(self.model)
        # Under FSDP every rank must run the same modules, whatever its batch holds.
        step = sharding.step_modalities(self.model, batch["inputs"].tensors if readable else (), self.device) \
            if sharded else []
        if not readable:
            if sharded:
                return sharding.idle_loss(self.model, step, self.device)
            if self.trainer.world_size == 1:
                return None
            # Under DDP every rank must run backward, or the others wait in all-reduce forever.
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        modality = batch["modality"]
        idle = [m for m in step if m not in batch["inputs"].tensors]
        self.schedule.append((self.global_step, modality))
        out = self.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "modality_mask", "labels")},
                         inputs=batch["inputs"], loss_only=True, idle=idle)
        size = len(batch["ids"])
        self.log(f"train/loss_{modality}", out.loss, batch_size=size)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=size)
        now = time.perf_counter()
        if self._step_start is not None:
            elapsed = now - self._step_start
            self.log("throughput/samples_per_s", size / elapsed, batch_size=size)
            self.log("throughput/tokens_per_s", float(batch["attention_mask"].sum()) / elapsed, batch_size=size)
        self._step_start = now
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], batch_size=size)
        if self.global_step % self.hparams.router_log_every == 0:
            for m, stats in self.model.router_statistics(reset=True).items():
                for e, w in enumerate(stats["mean_weight"]):
                    self.log(f"router/{m}/expert{e}", w, batch_size=size)
        return out.loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if not self._count_bad(batch):
            return
        out = self.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "modality_mask", "labels")},
                         inputs=batch["inputs"], loss_only=True)
        self.log(f"val/loss_{batch['modality']}", out.loss, batch_size=len(batch["ids"]))
        self.log("val/loss", out.loss, batch_size=len(batch["ids"]))

    def configure_model(self) -> None:
        # Only the FSDP2 strategy (sharding.FSDP2) shards; under any other the model stays whole.
        strategy = self.trainer.strategy
        if isinstance(strategy, sharding.ModelParallelStrategy) and not sharding.is_sharded(self.model):
            sharding.shard(self.model, self.device_mesh["data_parallel"], self.trainer.precision,
                           strategy.root_device)

    def _unsharded_model(self) -> OneLLM:
        """A fresh model of this module's architecture, to receive the gathered weights of a
        sharded one for export."""
        hp = self.hparams
        net = build_stage_model(hp.model, hp.modalities, hp.init_from)
        if self.model.lora is not None:
            net.add_lora(self.model.lora)
        return net

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train: every parameter is frozen")
        # beta2 0.95 as in LLaMA-style training: with 0.999 the large gradients of the first
        # steps (while the caption's fixed words are learned) keep Adam's step small for ~1000
        # steps, and the words that depend on the input are learned about half as fast.
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                betas=tuple(self.hparams.betas))
        total = max(int(self.trainer.max_steps), 1)
        warmup = self.hparams.warmup_steps

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _log_dir(self) -> Path:
        """The run's log folder, as every rank resolved it at train start."""
        self._log_path.mkdir(parents=True, exist_ok=True)
        return self._log_path

    def _write_rank_record(self) -> None:
        """Per rank: the modality of every step and a digest of the trained weights, so a
        data-parallel run can be audited (same schedule and same weights on every rank)."""
        digest = hashlib.sha256()
        for name, p in sorted(self.model.named_parameters()):
            if p.requires_grad:
                digest.update(name.encode())
                digest.update(sharding.whole(p.detach()).float().cpu().numpy().tobytes())
        log_dir = self._log_dir()
        record = {"rank": self.global_rank, "steps": self.schedule, "trained_weights_sha256": digest.hexdigest()}
        (log_dir / f"rank{self.global_rank}.json").write_text(json.dumps(record))

    def on_train_start(self) -> None:
        # trainer.log_dir is a broadcast under DDP: ask it here, where every rank does, and
        # not later from a rank alone (one that met a bad file), which would wait forever.
        self._log_path = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if self.trainer.ckpt_path:  # resumed: the log continues from the restored step
            for logger in self.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.resume_from(self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # remove_duplicate=False: a tied LM head is its own state_dict key, and as frozen as the embedding.
        frozen = {f"model.{n}" for n, p in self.model.named_parameters(remove_duplicate=False) if not p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        # What a kill after this checkpoint must not lose: the bad-sample record and the log.
        checkpoint["onellm"] = {"bad_samples": dict(self.bad_samples), "bad_reasons": dict(self.bad_reasons),
                                "samples_seen": self.samples_seen, "schedule": list(self.schedule)}
        for logger in self.loggers:
            logger.save()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("onellm", {})
        self.bad_samples = dict(saved.get("bad_samples", {}))
        self.bad_reasons = Counter(saved.get("bad_reasons", {}))
        self.samples_seen = int(saved.get("samples_seen", 0))
        self.schedule = [tuple(s) for s in saved.get("schedule", [])]

    def _bad_summary(self) -> str:
        reasons = ", ".join(f"{n} x {r}" for r, n in self.bad_reasons.most_common())
        return (f"skipped {len(self.bad_samples)} unreadable sample(s), drawn "
                f"{sum(self.bad_reasons.values())} times ({reasons})")

    def on_train_epoch_end(self) -> None:
        if self.bad_reasons and self.trainer.is_global_zero:
            print(f"epoch {self.current_epoch}: {self._bad_summary()}")

    def _write_bad_samples(self) -> Path:
        # Under DDP each rank reads (and so finds broken) its own share of the samples.
        name = "bad_samples.jsonl" if self.global_rank == 0 else f"bad_samples.rank{self.global_rank}.jsonl"
        path = self._log_dir() / name
        write_jsonl(path, ({"id": i, "reason": r} for i, r in sorted(self.bad_samples.items())))
        return path

    def on_fit_end(self) -> None:
        self._write_rank_record()
        if self.bad_samples:
            listed = self._write_bad_samples()
            if self.trainer.is_global_zero:
                print(f"{self._bad_summary()}; each with its file in {listed}")
        if self.hparams.export_dir:
            # Caption stages train "<modality tokens> caption", instruction tuning the template.
            task = getattr(self.trainer.datamodule, "task", None)
            if task is not None:
                self.model.config.prompting = "bare" if task == "caption" else "template"
            # A sharded model is gathered by every rank into an ordinary one on rank 0.
            if sharding.is_sharded(self.model):
                exported = sharding.unsharded_copy(self.model, self._unsharded_model)
            else:
                exported = self.model if self.trainer.is_global_zero else None
            if exported is not None:
                exported.save_pretrained(self.hparams.export_dir)
