"""Greedy generation speed with a modality prefix vs. the same LLM on text alone.

Both runs generate exactly --new-tokens tokens per sequence with the KV cache, in the same
process; the ratio is what the modality prefix costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from onellm import OneLLM


def tokens_per_second(fn, new_tokens: int, batch: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return new_tokens * batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--modality", default="image")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = OneLLM.from_pretrained(args.model).eval()
    proc, n = model.processor, args.new_tokens
    question = "Describe this in detail."
    gen = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False)
    print(f"| batch | text only tok/s | with {args.modality} prefix tok/s | ratio |\n|---:|---:|---:|---:|")
    for batch in args.batches:
        x = model.tokenizers[args.modality].example_input(batch, torch.Generator().manual_seed(0))
        inputs = proc([proc.prompt(question)] * batch)
        text = proc([proc.prompt(question).replace("<modality>", "")] * batch)
        with torch.no_grad():
            text_only = tokens_per_second(
                lambda: model.llm.generate(
                    input_ids=text["input_ids"],
                    attention_mask=text["attention_mask"],
                    pad_token_id=proc.tokenizer.pad_token_id,
                    **gen,
                ),
                n,
                batch,
                args.repeats,
            )
            prefixed = tokens_per_second(
                lambda: model.generate(**inputs, modality=args.modality, inputs=x, **gen), n, batch, args.repeats
            )
        print(f"| {batch} | {text_only:.1f} | {prefixed:.1f} | {prefixed / text_only:.2f} |")


if __name__ == "__main__":
    main()
