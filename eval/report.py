"""The summary of an output folder: every <task>/results.json gathered into results.json and
a markdown table, so that runs of different tasks into one folder add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY, TABLE = "results.json", "results.md"  # in <out>/, beside the task folders
# Columns in this order; any other metric follows alphabetically.
METRIC_ORDER = [
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "METEOR",
    "ROUGE-L",
    "CIDEr",
    "SPICE",
    "label_accuracy",
    "label_chance",
    "label_majority",
    "accuracy",
    "accuracy_majority",
    "contains_accuracy",
    "word_accuracy",
    "mc_accuracy",
]


def collect(out_dir: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(out_dir.glob("*/results.json")):
        try:
            results.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            continue  # a results file being rewritten by a concurrent run
    return results


def markdown_table(results: list[dict[str, Any]]) -> str:
    names = {m for r in results for m in r.get("metrics", {})}
    metrics = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    head = ["task", "modality", "samples", "skipped", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        values = [f"{r['metrics'][m]:.4f}" if m in r.get("metrics", {}) else "" for m in metrics]
        skipped = r.get("skipped", r.get("missing", ""))
        cells = [r["task"], r.get("modality", ""), str(r.get("samples", "")), str(skipped), *values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path) -> Path:
    """<out>/results.json (all tasks) and <out>/results.md; returns the markdown path."""
    results = collect(out_dir)
    (out_dir / SUMMARY).write_text(json.dumps({"tasks": results}, indent=2))
    models = sorted({r["model"] for r in results if r.get("model")})
    title = f"# Evaluation: {', '.join(models)}\n\n" if models else "# Evaluation\n\n"
    path = out_dir / TABLE
    path.write_text(title + markdown_table(results))
    return path
