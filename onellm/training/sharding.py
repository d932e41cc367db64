"""FSDP2 sharded training: `--trainer.strategy fsdp2` (or the class path
`onellm.training.sharding.FSDP2`). Each rank keeps 1/N of every parameter, gradient and
optimizer state; the same code runs on CPU (gloo) and GPU (nccl), since FSDP2 goes
through Lightning's ModelParallelStrategy where Lightning's own `fsdp` refuses a CPU."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.load import _METADATA_FILENAME
from lightning.pytorch.strategies import ModelParallelStrategy, StrategyRegistry
from torch import nn
from torch.distributed.checkpoint import DefaultLoadPlanner, load
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from ..model.modality_batch import ModalityBatch
from ..model.onellm import OneLLM

# Lightning's precision flags and the dtypes FSDP2 gathers parameters in for compute;
# gradients are always reduced in fp32, whatever the compute dtype.
_COMPUTE_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class FSDP2(ModelParallelStrategy):
    """Fully sharded data parallelism over every process (no tensor parallelism).
    `timeout_s`: how long a collective waits for the other ranks before failing, rather
    than hanging. Checkpoints are distributed-checkpoint directories, one shard per rank."""

    def __init__(self, timeout_s: float = 1800.0, process_group_backend: str | None = None) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=True,
            process_group_backend=process_group_backend,
            timeout=timedelta(seconds=timeout_s),
        )

    def setup_environment(self) -> None:
        # ModelParallelStrategy's "auto" puts one data-parallel group per node; here every
        # process is one data-parallel shard.
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: str | Path, storage_options: Any = None) -> None:
        """The distributed checkpoint written beside its place as `.<name>.tmp`, then renamed
        into it: a kill -9 while the shards are written leaves the previous checkpoint whole."""
        path = Path(self.broadcast(filepath))
        tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
        if self.global_rank == 0:
            for stale in (tmp, old):
                shutil.rmtree(stale, ignore_errors=True)
        self.barrier()
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier()
        if self.global_rank == 0:
            if path.exists():
                path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier()

    def load_checkpoint(self, checkpoint_path: str | Path, weights_only: bool | None = None) -> dict[str, Any]:
        """As ModelParallelStrategy's, but the model part may lack the frozen weights that
        OneLLMModule leaves out of its checkpoints (they come from the preset or init_from)."""
        path = Path(self.broadcast(checkpoint_path))
        module = self.model
        metadata = load_weights(module, path, weights_only)
        for idx, optimizer in enumerate(self.optimizers):
            optim_state = {f"optimizer_{idx}": get_optimizer_state_dict(module, optimizer)}
            load(optim_state, checkpoint_id=path)
            set_optimizer_state_dict(
                module,
                optimizer,
                optim_state_dict=optim_state[f"optimizer_{idx}"],
                options=StateDictOptions(cpu_offload=True),
            )
        return metadata


def load_weights(module: nn.Module, path: Path, weights_only: bool | None = None) -> dict[str, Any]:
    """The weights a distributed checkpoint directory holds, into the sharded `module` (a
    collective); those it leaves out (frozen ones) stay. Returns the checkpoint's other
    contents (global_step, callbacks' and loops' states)."""
    state = {"state_dict": get_model_state_dict(module)}
    load(state, checkpoint_id=path, planner=DefaultLoadPlanner(allow_partial_load=True))
    module.load_state_dict(state["state_dict"], strict=False)
    return torch.load(path / _METADATA_FILENAME, weights_only=weights_only)


if "fsdp2" not in StrategyRegistry:
    StrategyRegistry.register("fsdp2", FSDP2, description="onellm's FSDP2 over every process (CPU or GPU)")


def shard(model: OneLLM, mesh: Any, precision: str, device: torch.device) -> None:
    """fully_shard each LLM decoder layer, encoder block and UPM expert block, then the rest as
    one root unit. The root holds every modality's tokenizer and UPM parts, so which
    modality a step trains never changes the collectives a rank runs. Parameters start as
    rank 0's, as DDP would make them (broadcast on `device`: nccl needs them there)."""
    model.to(device)
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)
    dtype = _COMPUTE_DTYPES.get(str(precision))
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
    model.upm.blocks_only = True
    units: list[nn.Module] = [
        *model.llm.get_decoder().layers,
        *model.encoder.vit.encoder.layers,
        *(block for expert in model.upm.experts for block in expert),
    ]
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def step_modalities(model: OneLLM, present: Iterable[str], device: torch.device) -> list[str]:
    """The modalities any rank's batch of this step holds (a collective: every rank calls
    it every step). A rank runs those its own batch lacks as idle inputs, so that all ranks
    run the encoder and UPM as often, which FSDP's gathers need to stay in step."""
    # Whether the root unit is still gathered from the last forward depends on what ran
    # since (a rank-0-only state_dict() reshards it, say); resharding here puts every rank
    # in the same state, so the step's gathers pair up.
    model.reshard()
    present = set(present)
    flags = torch.tensor([float(m in present) for m in model.modalities], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [m for m, flag in zip(model.modalities, flags.tolist()) if flag]


def idle_loss(model: OneLLM, modalities: list[str], device: torch.device) -> torch.Tensor:
    """A zero loss for a rank whose whole batch was unreadable, through the very path a real
    batch takes (placeholders of `modalities` filled with zero inputs, one answer token), so
    that it runs every sharded module in the order the other ranks do."""
    prompt = model.processor.placeholders(modalities) if modalities else ""
    text = {k: v.to(device) for k, v in model.processor([prompt], answers=["."]).items()}
    zeros = [[(m, torch.zeros(model.tokenizers[m].input_shape)) for m in modalities]]
    out = model(**text, inputs=ModalityBatch.of_samples(zeros).to(device), loss_only=True)
    return out.loss * 0.0


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer whole, on the CPU of every rank (a collective)."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def unsharded_copy(model: OneLLM, build: Callable[[], OneLLM]) -> OneLLM | None:
    """On rank 0, a plain (unsharded) model built by `build` with the trained weights of the
    sharded `model`, for save_pretrained; None on the other ranks. Every rank must call it."""
    state = full_state_dict(model)
    if dist.get_rank() != 0:
        return None
    copy = build()
    copy.load_state_dict(state)
    copy.config = model.config
    return copy


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """A parameter as one tensor: a sharded one is gathered (a collective)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
