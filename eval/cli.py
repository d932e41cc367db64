"""The `onellm eval` subcommand. Importing this module is cheap: torch and the model load
inside the command."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on captioning / QA tasks, or score a predictions file",
        description="onellm eval --model DIR_OR_PRESET --task T[,T2] --data-root DIR --out DIR | "
                    "onellm eval --predictions FILE --task T --data-root DIR | onellm eval --list",
    )
    p.add_argument("--list", action="store_true", help="list the tasks and exit")
    p.add_argument("--task", help="task name(s), comma-separated; synth-all runs every synthetic task")
    p.add_argument("--data-root", type=Path, help="folder holding the tasks' annotation files and media")
    p.add_argument("--model", help="a save_pretrained directory or a preset name")
    p.add_argument("--out", type=Path, help="output folder (predictions, results.json, results.md)")
    p.add_argument("--predictions", type=Path, help="score this JSON Lines file of {id, prediction} rows instead")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples of each task")
    p.add_argument("--max-new-tokens", type=int, help="default: the task's (40 for captions, 10 for QA; three times that "
                                                           "for a byte-level LM such as the tiny preset's)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) decodes greedily")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--bare-prompt", action="store_true",
                   help="caption right after the modality tokens, as alignment stages train (no instruction template)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default on CPU: one less than torch's choice, at least 1)")
    p.set_defaults(func=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    from .tasks import list_tasks, resolve_tasks

    if args.list:
        for task in list_tasks():
            print(f"{task.name:<24} {task.modality:<8} {task.kind:<8} {task.description}")
        return 0
    if not args.task or args.data_root is None:
        raise ValueError("--task and --data-root are required (or --list)")
    tasks = resolve_tasks(args.task)
    if args.predictions is not None:
        return _score_file(args, tasks)
    if not args.model or args.out is None:
        raise ValueError("--model and --out are required to evaluate a model")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")

    import torch

    from onellm.model.onellm import OneLLM

    from .report import markdown_table
    from .runner import GenerationSettings, run_eval

    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu":
        # Inputs load in a background thread; leave it a core. Oversubscribed intra-op threads
        # made a tiny model's decoding several times slower on a 2-core machine.
        torch.set_num_threads(max(1, torch.get_num_threads() - 1))
    # A preset's random weights must be the same in every run, or resuming would mix models.
    torch.manual_seed(0)
    model = OneLLM.from_pretrained(args.model).eval()
    model.to(device=args.device, dtype=getattr(torch, args.dtype))
    usable = [t for t in tasks if t.modality in model.tokenizers]
    for task in tasks:
        if task.name not in {t.name for t in usable}:
            print(f"skipping {task.name}: the model has no {task.modality} tokenizer", file=sys.stderr)
    settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_p, args.bare_prompt)
    results = run_eval(model, usable, args.data_root, args.out, settings, args.batch_size, args.max_samples,
                       model_name=str(args.model), dtype=args.dtype)
    print(markdown_table(results), end="")
    print(f"results in {args.out}")
    return 0


def _score_file(args: argparse.Namespace, tasks: list) -> int:
    from .runner import score_predictions

    if len(tasks) != 1:
        raise ValueError("--predictions scores one task at a time")
    result = score_predictions(tasks[0], args.data_root, args.predictions, args.out)
    print(json.dumps(result, indent=2))
    return 0
