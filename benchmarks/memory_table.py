"""Training memory of a preset per accelerator, computed from its parameter counts (the model
is built on the meta device, so nothing is allocated): full fine-tuning vs LoRA, with and
without gradient checkpointing. An estimate, not a measurement; docs/scale.md prints it.

Assumptions: Lightning's bf16-mixed precision (fp32 weights; a trainable parameter costs
4 B weight + 4 B gradient + 8 B AdamW state, a frozen one 4 B); activations in bf16 of
about 34 x s x b x h bytes per LM layer (Korthikanti et al. 2022, attention scores not
kept, as SDPA/flash attention does), 2 x s x b x h per layer with checkpointing plus one
layer recomputed; fp32 logits and their gradient for the answer positions only (the
training path projects only those); encoder frozen (no activations kept); UPM activations
as for the LM, over its queries and one input's encoder tokens. No DDP/FSDP sharding.

    python benchmarks/memory_table.py --preset onellm-7b --batch 4 --seq 512 --answer 128
"""

from __future__ import annotations

import argparse

import torch

from onellm.config import OneLLMConfig
from onellm.model.lora import LoRAConfig, inject_lora
from onellm.model.onellm import OneLLM

GB = 1024**3


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="onellm-7b")
    parser.add_argument("--batch", type=int, default=4, help="samples per accelerator")
    parser.add_argument("--seq", type=int, default=512, help="LM sequence length (modality tokens included)")
    parser.add_argument("--answer", type=int, default=128, help="labelled (answer) tokens per sample")
    parser.add_argument("--lora-r", type=int, default=16)
    args = parser.parse_args()

    config = OneLLMConfig.from_preset(args.preset)
    with torch.device("meta"):
        model = OneLLM(config)
    llm, encoder, rest = count(model.llm), count(model.encoder), count(model.upm) + count(model.tokenizers)
    with torch.device("meta"):
        adapters = inject_lora(model.llm, LoRAConfig(r=args.lora_r))
    lm = model.llm.config
    h, layers, vocab = lm.hidden_size, lm.num_hidden_layers, lm.vocab_size
    b, s = args.batch, args.seq
    upm_tokens = config.upm.num_queries + 1 + config.encoder.num_patches
    upm_layers = config.upm.num_experts * config.upm.layers_per_expert
    logits = 2 * 4 * b * args.answer * vocab

    def activations(checkpointing: bool) -> float:
        per_layer = 34 * s * b * h
        lm_part = (2 * s * b * h * layers + per_layer) if checkpointing else per_layer * layers
        upm_part = 34 * upm_tokens * b * config.encoder.width * upm_layers
        return (lm_part + upm_part + logits) / GB

    rows = {
        "stages 1-3: LM frozen, tokenizers + UPM train": (llm + encoder) * 4 + rest * 16,
        "stage 4: LM fully fine-tuned": encoder * 4 + (llm + rest) * 16,
        f"stage 4: LoRA r={args.lora_r} on q/k/v/o ({adapters / 1e6:.1f} M)": (llm + encoder) * 4
        + (adapters + rest) * 16,
    }
    print(
        f"{args.preset}: LM {llm / 1e9:.2f} B, encoder {encoder / 1e9:.2f} B, UPM + tokenizers {rest / 1e9:.2f} B "
        f"parameters; batch {b} x {s} tokens ({args.answer} labelled) per accelerator\n"
    )
    print(
        "| what trains | weights + gradients + AdamW (GB) | activations (GB) | total (GB) | "
        "with checkpointing: activations | total |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, state in rows.items():
        state /= GB
        plain, lean = activations(False), activations(True)
        print(f"| {name} | {state:.1f} | {plain:.1f} | {state + plain:.1f} | {lean:.1f} | {state + lean:.1f} |")


if __name__ == "__main__":
    main()
