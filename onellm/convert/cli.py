"""`onellm convert-official`: argument parsing only; the work is imported when the command runs."""

from __future__ import annotations

import argparse

DTYPES = ("float16", "bfloat16", "float32")


def add_convert_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert-official",
        help="convert the published OneLLM checkpoint (consolidated.00-of-01.pth) to a model directory",
        description="Convert the published OneLLM checkpoint into a directory that "
        "OneLLM.from_pretrained and `onellm caption --model DIR` load. Nothing is downloaded.",
    )
    parser.add_argument("checkpoint", help="the official .pth (read with weights_only and mmap) or a .safetensors")
    parser.add_argument("--llama-tokenizer", required=True, help="LLaMA-2's sentencepiece tokenizer.model")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--clip", help="a local Hugging Face CLIP directory to take encoder weights the checkpoint lacks from"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="cast every tensor (default: keep the stored dtypes)")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="write a model even when tensors are missing or unmapped (missing ones freshly initialised)",
    )
    heads = parser.add_argument_group(
        "head counts (not visible in shapes; the 7B release's by default, required at any other width)"
    )
    heads.add_argument("--llm-heads", type=int, help="LLaMA attention heads (default: 32 at width 4096)")
    heads.add_argument("--clip-heads", type=int, help="CLIP attention heads (default: 16 at width 1024)")
    heads.add_argument("--upm-heads", type=int, help="UPM expert attention heads (default: 16 at width 1024)")
    parser.set_defaults(func=run_convert)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    import torch

    from .convert import convert_official

    report = convert_official(
        args.checkpoint,
        args.out,
        args.llama_tokenizer,
        clip=args.clip,
        dtype=getattr(torch, args.dtype) if args.dtype else None,
        allow_partial=args.allow_partial,
        llm_heads=args.llm_heads,
        clip_heads=args.clip_heads,
        upm_heads=args.upm_heads,
    )
    print(report.summary())
    return 0
