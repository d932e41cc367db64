"""OneLLMModule: a OneLLM model as a LightningModule, with per-stage freezing by globs. A step
is the forward and the loss; the run's other work is in `callbacks/`."""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from ..convert.legacy import split_stacked_upm
from ..model.lora import LoRAConfig
from ..model.onellm import OneLLM
from . import sharding
from .callbacks import BadSamples, Export, LearningRate, RankRecord, RouterStatistics, Throughput
from .logs import ContinueLog
from .stage_model import build_stage_model

TEXT_KEYS = ("input_ids", "attention_mask", "modality_mask", "labels")


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
        activations in backward, trading compute for memory. `export_dir`, `router_log_every`
        and `max_bad_fraction` configure the callbacks (configure_callbacks)."""
        super().__init__()
        self.save_hyperparameters()
        self.model = build_stage_model(model, modalities, init_from)
        if lora is not None and lora.r:
            if self.model.lora is not None:
                raise ValueError(
                    f"{init_from or model} already carries a LoRA adapter; merge it at its export "
                    "(lora.merge: true) before adding another"
                )
            adapters = self.model.add_lora(lora)
            total = sum(p.numel() for p in self.model.llm.parameters())
            rank_zero_info(
                f"LoRA r={lora.r} on {', '.join(lora.target_modules)}: {adapters:,} trainable LM parameters "
                f"of {total:,}"
            )
        if gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        if trainable is not None:
            self._apply_trainable(trainable)
        # Frozen weights come from `init_from`/the preset again on resume, so checkpoints skip them.
        self.strict_loading = False

    def _apply_trainable(self, patterns: list[str]) -> None:
        used = set()
        for name, p in self.model.named_parameters():
            hits = [pat for pat in patterns if fnmatch.fnmatchcase(name, pat)]
            used.update(hits)
            p.requires_grad_(bool(hits))
        unused = [p for p in patterns if p not in used]
        if unused:
            raise ValueError(
                f"trainable pattern(s) {unused} match no parameter (names look like 'upm.experts.0.0.attention.wq.weight')"
            )

    def configure_callbacks(self) -> list[L.Callback]:
        callbacks = [
            BadSamples(self.hparams.max_bad_fraction),
            RouterStatistics(self.hparams.router_log_every),
            Throughput(),
            LearningRate(),
            RankRecord(),
            ContinueLog(),
        ]
        return callbacks + ([Export(self.hparams.export_dir)] if self.hparams.export_dir else [])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        sharded = sharding.is_sharded(self.model)
        readable = "inputs" in batch  # False: no sample of the batch was readable (BadSamples counts them)
        # Under FSDP every rank must run the same modules, whatever its batch holds.
        step = (
            sharding.step_modalities(self.model, batch["inputs"].tensors if readable else (), self.device)
            if sharded
            else []
        )
        if not readable:
            if sharded:
                return sharding.idle_loss(self.model, step, self.device)
            if self.trainer.world_size == 1:
                return None
            # Under DDP every rank must run backward, or the others wait in all-reduce forever.
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        idle = [m for m in step if m not in batch["inputs"].tensors]
        loss = self.model(**{k: batch[k] for k in TEXT_KEYS}, inputs=batch["inputs"], loss_only=True, idle=idle).loss
        size = len(batch["ids"])
        self.log(f"train/loss_{batch['modality']}", loss, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if "inputs" not in batch:
            return
        loss = self.model(**{k: batch[k] for k in TEXT_KEYS}, inputs=batch["inputs"], loss_only=True).loss
        self.log(f"val/loss_{batch['modality']}", loss, batch_size=len(batch["ids"]))
        self.log("val/loss", loss, batch_size=len(batch["ids"]))

    def configure_model(self) -> None:
        # Only the FSDP2 strategy (sharding.FSDP2) shards; under any other the model stays whole.
        strategy = self.trainer.strategy
        if isinstance(strategy, sharding.ModelParallelStrategy) and not sharding.is_sharded(self.model):
            sharding.shard(self.model, self.device_mesh["data_parallel"], self.trainer.precision, strategy.root_device)

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
        opt = torch.optim.AdamW(
            params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, betas=tuple(self.hparams.betas)
        )
        schedule = warmup_cosine(self.hparams.warmup_steps, max(int(self.trainer.max_steps), 1))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        # The name is the logged metric's (LearningRate callback).
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "name": "train/lr"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # remove_duplicate=False: a tied LM head is its own state_dict key, and as frozen as the embedding.
        frozen = {f"model.{n}" for n, p in self.model.named_parameters(remove_duplicate=False) if not p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A distributed (FSDP2) checkpoint carries no "state_dict" here: its shards load in place.
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = split_stacked_upm(checkpoint["state_dict"], prefix="model.upm.")


def warmup_cosine(warmup: int, total: int):
    """The learning-rate factor at a step: linear warm-up over `warmup` steps, then a cosine
    from 1 down to 0.1 at step `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
