"""Single-input speed through the multi-input path, against the one-modality path it replaced.

`forward`/`generate` now take a ModalityBatch (inputs grouped per modality, runs gathered into
placeholder order). The baseline, written out here, is the earlier single-modality code: encode
the batch's one modality and scatter its tokens into the placeholders. Both run in this process,
alternating, on the same inputs; the table gives medians and the speed ratio, baseline time /
ours (1.00: no cost; below 1: slower). Training: forward (answer logits only) + backward; generation: greedy, KV cache.

    python benchmarks/bench_multi_input.py --preset tiny --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from onellm.model.onellm import OneLLM


def baseline_embed(
    model: OneLLM, input_ids: torch.Tensor, mask: torch.Tensor, modality: str, x: torch.Tensor
) -> torch.Tensor:
    tokens, _ = model.encode(modality, x)
    embeds = model.llm.get_input_embeddings()(input_ids)
    return embeds.masked_scatter(mask.unsqueeze(-1), tokens.to(embeds.dtype))


def baseline_step(model: OneLLM, batch: dict, modality: str, x: torch.Tensor) -> None:
    embeds = baseline_embed(model, batch["input_ids"], batch["modality_mask"], modality, x)
    hidden = model.llm.base_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False)[0]
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    F.cross_entropy(model.llm.get_output_embeddings()(hidden[:, :-1][keep]).float(), targets[keep]).backward()


def ours_step(model: OneLLM, batch: dict, modality: str, x: torch.Tensor) -> None:
    model(**batch, modality=modality, inputs=x, loss_only=True).loss.backward()


def baseline_generate(model: OneLLM, prompt: dict, modality: str, x: torch.Tensor, tokens: int) -> None:
    with torch.no_grad():
        embeds = baseline_embed(model, prompt["input_ids"], prompt["modality_mask"], modality, x)
        model.llm.generate(
            inputs_embeds=embeds,
            attention_mask=prompt["attention_mask"],
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=model.processor.tokenizer.pad_token_id,
        )


def ours_generate(model: OneLLM, prompt: dict, modality: str, x: torch.Tensor, tokens: int) -> None:
    model.generate(**prompt, modality=modality, inputs=x, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)


def alternate(ours: Callable[[], None], baseline: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Medians (s) of the two, run one after the other `repeats` times after a warm-up."""
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for n in range(repeats + 1):
        for name, run in (("ours", ours), ("baseline", baseline)):
            start = time.perf_counter()
            run()
            if n:
                times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["baseline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--modalities", default="image,video,audio,point,imu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = OneLLM.from_pretrained(args.preset)
    processor = model.processor
    train = processor(
        [processor.prompt("What is it?")] * args.batch, answers=["a small red circle on the left"] * args.batch
    )
    prompt = processor([processor.prompt("What is it?")] * args.batch)
    print(f"{args.preset}, batch {args.batch}, torch threads {torch.get_num_threads()}, medians of {args.repeats}")
    print("| modality | train step ms (ours / baseline) | speed | generate ms (ours / baseline) | speed |")
    print("|---|---|---|---|---|")
    ratios = []
    for modality in args.modalities.split(","):
        x = model.tokenizers[modality].example_input(args.batch, torch.Generator().manual_seed(1))
        model.train()
        step = alternate(
            lambda: ours_step(model, train, modality, x), lambda: baseline_step(model, train, modality, x), args.repeats
        )
        model.zero_grad(set_to_none=True)
        model.eval()
        gen = alternate(
            lambda: ours_generate(model, prompt, modality, x, args.new_tokens),
            lambda: baseline_generate(model, prompt, modality, x, args.new_tokens),
            args.repeats,
        )
        ratios += [step[1] / step[0], gen[1] / gen[0]]
        print(
            f"| {modality} | {step[0] * 1e3:.1f} / {step[1] * 1e3:.1f} | {step[1] / step[0]:.2f} | "
            f"{gen[0] * 1e3:.1f} / {gen[1] * 1e3:.1f} | {gen[1] / gen[0]:.2f} |"
        )
    print(
        f"speed relative to the baseline (>1: faster), geometric mean: "
        f"{statistics.geometric_mean(ratios):.3f}, min {min(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
