"""Per-rank parameter + gradient + AdamW state memory of a preset under FSDP2
(onellm.training.sharding.shard) for 1 and 2 ranks: 2 gloo processes on the CPU, one
training step each, bytes counted from each rank's local shards (what it holds, not what
the allocator reserved).

    python benchmarks/bench_fsdp_memory.py --preset tiny
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from onellm.config import OneLLMConfig
from onellm.model.onellm import OneLLM
from onellm.training.sharding import shard

MB = 1024**2


def _local_bytes(tensor: torch.Tensor) -> int:
    local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
    return local.numel() * local.element_size()


def _rank(rank: int, world: int, preset: str, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = OneLLM(OneLLMConfig.from_preset(preset))
    shard(model, init_device_mesh("cpu", (world,)), "32-true", torch.device("cpu"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    modality = model.modalities[0]
    batch = model.processor(["<modality>"] * 2, answers=["a caption", "another caption"])
    x = model.tokenizers[modality].example_input(2, torch.Generator().manual_seed(1))
    model(**batch, modality=modality, inputs=x).loss.backward()
    opt.step()
    params = sum(_local_bytes(p) for p in model.parameters())
    grads = sum(_local_bytes(p.grad) for p in trainable if p.grad is not None)
    state = sum(_local_bytes(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
    Path(out, f"{world}-{rank}.json").write_text(json.dumps({"params": params, "grads": grads, "optimizer": state}))
    dist.destroy_process_group()


def measure(preset: str, worlds: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Per world size: rank 0's MB of parameters, gradients and optimizer state."""
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for world in worlds:
            init = f"file://{os.path.join(out, f'rendezvous{world}')}"
            mp.spawn(_rank, args=(world, preset, init, out), nprocs=world, join=True)
            held = json.loads(Path(out, f"{world}-0.json").read_text())
            rows.append(
                {
                    "preset": preset,
                    "ranks": world,
                    **{k: round(v / MB, 2) for k, v in held.items()},
                    "total_mb": round(sum(held.values()) / MB, 2),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    for row in measure(args.preset):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
