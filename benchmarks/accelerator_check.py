"""One prepared command for a lent accelerator: per preset, modality and precision mode, the
training step (time, samples/s, tokens/s, model FLOPs utilisation from the step's FLOP
count, peak memory, loss after the same steps), generation tokens/s in bf16, and per-rank
FSDP2 memory for 1 vs 2 ranks. Writes accelerator_check.json and accelerator_check.md.

    python benchmarks/accelerator_check.py                      # a GPU: smollm2 and onellm-7b widths
    python benchmarks/accelerator_check.py --device cpu --presets tiny --steps 4

Precision modes: fp32; bf16-mixed (fp32 weights, bf16 autocast, as Lightning's
`bf16-mixed`); bf16-frozen (frozen weights stored in bf16, trainable ones fp32, autocast).
onellm-7b keeps its widths but only `--llm-layers` LLM layers (random weights), so that it
fits one GPU and the time. MFU is against `--peak-tflops`, or else against the rate this
device reached on one large bf16 matrix product (said in the output).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from onellm.config import OneLLMConfig
from onellm.model.onellm import OneLLM

CAPTIONS = ["a red circle on the left", "a blue square at the top", "a green star", "two yellow triangles"]
MODES = ("fp32", "bf16-mixed", "bf16-frozen")


def build(preset: str, llm_layers: int, device: torch.device) -> OneLLM:
    config = OneLLMConfig.from_preset(preset)
    if config.llm.random_init and preset != "tiny":
        config.llm.random_init["num_hidden_layers"] = min(llm_layers, config.llm.random_init["num_hidden_layers"])
    torch.manual_seed(0)
    return OneLLM(config).to(device)


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of one large bf16 matrix product on `device`: what MFU is measured against
    when no --peak-tflops is given."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ a
    _sync(device)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ a
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's, Linux kB


def train_steps(
    model: OneLLM, modality: str, mode: str, steps: int, batch: int, device: torch.device
) -> dict[str, Any]:
    """`steps` AdamW steps of `modality` on a fixed batch in precision `mode`; the model's own
    trainable parts train. The model is changed (trained, maybe cast): build one per call."""
    if mode == "bf16-frozen":
        for p in model.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    model.train()
    text = {
        k: v.to(device) for k, v in model.processor(["<modality>"] * batch, answers=(CAPTIONS * batch)[:batch]).items()
    }
    x = model.tokenizers[modality].example_input(batch, torch.Generator().manual_seed(1)).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != "fp32")

    def step() -> float:
        with autocast:
            loss = model(**text, modality=modality, inputs=x, loss_only=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with FlopCounterMode(display=False) as counter:
        losses = [step()]
    times = []
    for _ in range(steps - 1):
        _sync(device)
        start = time.perf_counter()
        losses.append(step())
        _sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times) if times else float("nan")
    return {
        "step_s": seconds,
        "samples_per_s": batch / seconds,
        "tokens_per_s": float(text["attention_mask"].sum()) / seconds,
        "flops_per_step": counter.get_total_flops(),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_memory_mb": _peak_memory_mb(device),
    }


def generation_rate(model: OneLLM, device: torch.device, new_tokens: int = 32) -> float:
    """New tokens per second of one image caption, the model cast to bf16, greedy."""
    model.eval().to(torch.bfloat16)
    x = model.tokenizers["image"].example_input(1).to(device)
    model.caption("image", x, max_new_tokens=2, min_new_tokens=2)
    _sync(device)
    start = time.perf_counter()
    model.caption("image", x, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    _sync(device)
    return new_tokens / (time.perf_counter() - start)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# accelerator_check on {report['device_name']}",
        "",
        f"MFU against {report['peak_tflops']:.1f} TFLOP/s ({report['peak_source']}).",
        "",
        "| preset | modality | mode | step ms | samples/s | tokens/s | GFLOP/step | MFU | peak MB | loss first -> last |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["steps"]:
        lines.append(
            f"| {r['preset']} | {r['modality']} | {r['mode']} | {1000 * r['step_s']:.1f} | "
            f"{r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['flops_per_step'] / 1e9:.2f} | "
            f"{100 * r['mfu']:.2f}% | {r['peak_memory_mb']:.0f} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} |"
        )
    lines += ["", "| preset | bf16 generation tokens/s |", "|---|---|"]
    lines += [f"| {p} | {rate:.1f} |" for p, rate in report["generation_tokens_per_s"].items()]
    if report.get("fsdp_memory"):
        lines += [
            "",
            "| preset | FSDP ranks | params MB | grads MB | AdamW MB | per-rank total MB |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['preset']} | {r['ranks']} | {r['params']} | {r['grads']} | {r['optimizer']} | {r['total_mb']} |"
            for r in report["fsdp_memory"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["smollm2", "onellm-7b"])
    parser.add_argument("--modalities", nargs="+", default=None, help="default: every modality of the preset")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--llm-layers", type=int, default=4, help="LLM layers kept of a random-weight preset")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 dense peak")
    parser.add_argument("--fsdp-memory", action="store_true", help="also per-rank FSDP memory, 1 vs 2 CPU ranks")
    parser.add_argument("--out", default="accelerator_check")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else matmul_peak(device)
    report: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "peak_tflops": peak / 1e12,
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)",
        "peak_source": "given" if args.peak_tflops else "measured: one large bf16 matrix product",
        "steps": [],
        "generation_tokens_per_s": {},
    }
    for preset in args.presets:
        modalities = args.modalities or list(OneLLMConfig.from_preset(preset).modalities)
        for modality in modalities:
            for mode in args.modes:
                model = build(preset, args.llm_layers, device)
                row = train_steps(model, modality, mode, args.steps, args.batch, device)
                row.update(
                    preset=preset, modality=modality, mode=mode, mfu=row["flops_per_step"] / row["step_s"] / peak
                )
                report["steps"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                del model
        report["generation_tokens_per_s"][preset] = generation_rate(build(preset, args.llm_layers, device), device)
    if args.fsdp_memory:
        from bench_fsdp_memory import measure  # beside this script

        report["fsdp_memory"] = [row for preset in args.presets for row in measure(preset)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accelerator_check.json").write_text(json.dumps(report, indent=2))
    (out / "accelerator_check.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
