"""`onellm plot RUN_DIR`: loss curves per modality and a router heat map from a CSV log."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path


def _read_metrics(run_dir: Path) -> list[dict[str, str]]:
    files = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"{run_dir}: no metrics.csv (was the CSV logger on?)")
    rows: list[dict[str, str]] = []
    for f in files:
        with open(f, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = _read_metrics(run_dir)
    losses: dict[str, list[tuple[int, float]]] = defaultdict(list)
    router: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        step = int(float(row.get("step") or 0))
        for key, value in row.items():
            if not value:
                continue
            if m := re.fullmatch(r"train/loss_(.+)", key):
                losses[m.group(1)].append((step, float(value)))
            elif m := re.fullmatch(r"router/(.+)/expert(\d+)", key):
                router[m.group(1)][int(m.group(2))].append(float(value))
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for modality, points in sorted(losses.items()):
        steps, values = zip(*sorted(points))
        ax.plot(steps, values, label=modality, linewidth=1)
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title="loss per modality")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "loss_per_modality.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    if router:
        modalities = sorted(router)
        experts = max(max(r) for r in router.values()) + 1
        grid = [
            [sum(router[m][e]) / len(router[m][e]) if router[m][e] else float("nan") for e in range(experts)]
            for m in modalities
        ]
        fig, ax = plt.subplots(figsize=(1.2 * experts + 3, 0.45 * len(modalities) + 1.5))
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set(
            xticks=range(experts),
            xticklabels=[f"expert {e}" for e in range(experts)],
            yticks=range(len(modalities)),
            yticklabels=modalities,
            title="mean router weight",
        )
        for i, row in enumerate(grid):
            for e, v in enumerate(row):
                ax.text(e, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        written.append(out / "router_weights.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written
