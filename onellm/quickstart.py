"""`onellm quickstart`: the README's main command, end to end on the embedded default."""
from __future__ import annotations

import time

import torch


def run(preset: str = "tiny", seed: int = 0) -> None:
    from .model.onellm import OneLLM

    torch.manual_seed(seed)
    start = time.perf_counter()
    model = OneLLM.from_pretrained(preset).eval()
    print(f"model {preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"modalities {', '.join(model.modalities)}")
    generator = torch.Generator().manual_seed(seed)
    for modality, tokenizer in model.tokenizers.items():
        x = tokenizer.example_input(1, generator)
        text = model.caption(modality, x, max_new_tokens=16)[0]
        print(f"{modality:>7} {list(x.shape[1:])!s:<22} -> {text!r}")
    print(f"done in {time.perf_counter() - start:.1f} s")
