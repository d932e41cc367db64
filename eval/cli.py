"""The `onellm eval` subcommand. Importing this module is cheap: torch and the model load
inside the command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from onellm.config import Prompting  # no torch: the module stays cheap to import

OWN_DATA_HINT = (
    "your own data: onellm eval --model M --manifest FILE.jsonl --out DIR "
    "(a caption and/or QA task from the manifest's test split; docs/evaluation.md)"
)


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on captioning / QA tasks or on a manifest, or score a predictions file",
        description="onellm eval --model DIR_OR_PRESET --task T[,T2] --data-root DIR --out DIR | "
        "onellm eval --model DIR_OR_PRESET --manifest FILE.jsonl [--manifest FILE2.jsonl] --out DIR | "
        "onellm eval --predictions FILE (--task T --data-root DIR | --manifest FILE) | onellm eval --list",
    )
    p.add_argument("--list", action="store_true", help="list the tasks and exit")
    p.add_argument("--task", help="task name(s), comma-separated; synth-all runs every synthetic task")
    p.add_argument("--data-root", type=Path, help="folder holding the tasks' annotation files and media")
    p.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=[],
        help="evaluate a JSON Lines manifest (repeatable): task manifest-caption-<stem> when its samples "
        "have captions, manifest-qa-<stem> when they have qa pairs",
    )
    p.add_argument("--modality", help="with --manifest: the samples' modality to evaluate (default: theirs)")
    p.add_argument("--split", help="with --manifest: the split to evaluate (default: test)")
    p.add_argument(
        "--inputs",
        help="ask with only these of each sample's inputs, comma-separated (an ablation: "
        "'video' evaluates a video+audio task on the video alone); the task is "
        "reported as <task>@<inputs>",
    )
    p.add_argument("--model", help="a save_pretrained directory or a preset name")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder: <out>/<task>/predictions.jsonl and results.json, "
        "<out>/results.json and results.md across tasks",
    )
    p.add_argument("--predictions", type=Path, help="score this JSON Lines file of {id, prediction} rows instead")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--max-samples", "--limit", type=int, dest="max_samples", help="evaluate only the first N items of each task"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="default: the task's (40 for captions, 10 for QA; three times that "
        "for a byte-level LM such as the tiny preset's)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) decodes greedily")
    p.add_argument("--top-p", type=float, default=1.0)
    prompting = p.add_mutually_exclusive_group()
    prompting.add_argument(
        "--bare-prompt",
        dest="prompting",
        action="store_const",
        const=Prompting.BARE.value,
        help="caption tasks: caption right after the modality tokens, as alignment stages train "
        "(default when the model's config.prompting is bare)",
    )
    prompting.add_argument(
        "--template",
        dest="prompting",
        action="store_const",
        const=Prompting.TEMPLATE.value,
        help="caption tasks: ask in the instruction template (default for other models)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (default on CPU: one less than torch's choice, at least 1)"
    )
    p.set_defaults(func=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    from .tasks import list_tasks

    if args.list:
        for task in list_tasks():
            print(f"{task.name:<24} {task.modality:<8} {task.kind:<8} {task.description}")
        print(OWN_DATA_HINT)
        return 0
    tasks = _chosen_tasks(args)
    if args.predictions is not None:
        return _score_file(args, tasks)
    if not args.model or args.out is None:
        raise ValueError("--model and --out are required to evaluate a model")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")

    import torch

    from onellm.model.llm import decoding
    from onellm.model.onellm import OneLLM

    from .report import markdown_table
    from .runner import run_eval, task_fits
    from .tasks import QA

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
    usable = [t for t in tasks if task_fits(model, t)]
    for task in tasks:
        if task.name not in {t.name for t in usable}:
            print(f"skipping {task.name}: the model has no {task.modality} tokenizer", file=sys.stderr)
    if model.config.prompting == Prompting.BARE and any(t.kind == QA for t in usable):
        print(
            "note: this model was last trained on captions (prompting: bare), not instruction-tuned; "
            "QA tasks ask in the template all the same",
            file=sys.stderr,
        )
    generation = decoding(args.max_new_tokens, args.temperature, args.top_p)
    results = run_eval(
        model,
        usable,
        args.data_root,
        args.out,
        generation,
        prompting=args.prompting,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        model_name=str(args.model),
        dtype=args.dtype,
    )
    print(markdown_table(results), end="")
    _print_outputs(args.out, results)
    return 0


def _chosen_tasks(args: argparse.Namespace) -> list:
    """--task names (read under --data-root) and the tasks of each --manifest, in that order."""
    from .tasks import manifest_tasks, resolve_tasks, with_inputs

    if not args.task and not args.manifest:
        raise ValueError("name tasks with --task (and --data-root) or --manifest (or use --list)")
    if args.task and args.data_root is None:
        raise ValueError("--task needs --data-root, the folder holding the tasks' files")
    if not args.manifest and (args.modality or args.split):
        raise ValueError("--modality and --split choose a manifest's samples; give --manifest too")
    tasks = resolve_tasks(args.task) if args.task else []
    for path in args.manifest:
        tasks += manifest_tasks(path, args.modality, args.split or "test")
    if args.inputs:
        tasks = [with_inputs(t, [m.strip() for m in args.inputs.split(",") if m.strip()]) for t in tasks]
    names = [t.name for t in tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two manifests give the task(s) {', '.join(twice)}: manifest file names must differ")
    return tasks


def _print_outputs(out: Path, results: list[dict]) -> None:
    """Where everything went, so that nobody has to guess the layout."""
    from .report import SUMMARY, TABLE
    from .runner import PREDICTIONS, RESULTS, SKIPPED

    for result in results:
        folder = out / result["task"]
        skipped = f", skipped samples {folder / SKIPPED}" if result["skipped"] else ""
        print(f"{result['task']}: predictions {folder / PREDICTIONS}, scores {folder / RESULTS}{skipped}")
    print(f"all tasks: scores {out / SUMMARY}, table {out / TABLE}")


def _score_file(args: argparse.Namespace, tasks: list) -> int:
    from .runner import RESULTS, score_predictions

    if len(tasks) != 1:
        raise ValueError(f"--predictions scores one task at a time, not {', '.join(t.name for t in tasks)}")
    result = score_predictions(tasks[0], args.data_root, args.predictions, args.out)
    print(json.dumps(result, indent=2))
    if args.out is not None:  # on stderr: stdout stays one JSON document
        print(f"scores in {args.out / tasks[0].name / RESULTS}", file=sys.stderr)
    return 0
