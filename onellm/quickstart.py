"""`onellm quickstart`: the README's main command, end to end on the embedded default.

Synthesizes the eight-modality world, trains the published recipe's stages 1 -> 3 and a
short stage 4 through the same `onellm fit` configs a user would run, evaluates captioning
per modality on held-out samples against the untrained model, repeats stages 2-3 without
replay to show what replay buys, and prints the tables."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .config import Prompting

if TYPE_CHECKING:
    from .eval.metrics import CaptionScorer

STAGES = ("stage1-image", "stage2-video-audio-point", "stage3-depth-normal-imu-fmri", "stage4-instruct")
AUDIO_VISUAL_STAGE, AUDIO_VISUAL_SCENE = "stage5-audio-visual", "audiovisual"
METRIC = "CIDEr"


def _stage_config(name: str) -> dict[str, Any]:
    text = (resources.files("onellm.data_recipes") / "tiny-synth" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def _without_replay(config: dict[str, Any], number: int, earlier: list[str]) -> dict[str, Any]:
    """Stage `number` trained on its new modalities only, into runs/stage<number>-noreplay."""
    config = copy.deepcopy(config)
    name = f"stage{number}-noreplay"
    config["model"]["export_dir"] = f"runs/{name}/export"
    if number > 2:
        config["model"]["init_from"] = f"runs/stage{number - 1}-noreplay/export"
    config["trainer"]["default_root_dir"] = f"runs/{name}"
    for logger in config["trainer"]["logger"]:
        logger["init_args"]["name"] = name
    config["data"]["datasets"] = [d for d in config["data"]["datasets"] if d["modality"] not in earlier]
    return config


def _fit(
    work: Path, config: dict[str, Any], path: Path, preset: str, seed: int, steps_scale: float, batch_size: int
) -> None:
    """`onellm fit --config PATH` in the run folder, whose relative paths the configs use,
    as a user would run it (and as multi-process strategies relaunch it)."""
    config = {**config, "trainer": {**config["trainer"]}}
    config["trainer"]["max_steps"] = max(2, round(config["trainer"]["max_steps"] * steps_scale))
    config["trainer"]["val_check_interval"] = min(
        config["trainer"]["val_check_interval"], config["trainer"]["max_steps"]
    )
    config["model"] = {**config["model"], "model": preset}
    config["data"] = {**config["data"], "seed": seed, "batch_size": batch_size}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "onellm", "fit", "--config", str(path), "--seed_everything", str(seed)]
    if subprocess.run(command, cwd=work).returncode:
        raise RuntimeError(f"training with {path} failed (its error is above)")


def _evaluate(
    model_dir: Path,
    modalities: list[str],
    kind: str,
    out: Path,
    samples: int | None,
    data_root: Path,
    scorer: CaptionScorer,
    bare_prompt: bool = False,
) -> dict[str, dict[str, Any]]:
    from transformers import GenerationConfig

    from .eval.runner import run_eval
    from .eval.tasks import get_task
    from .model.onellm import OneLLM

    model = OneLLM.from_pretrained(model_dir)
    tasks = [get_task(f"synth-{kind}-{m}") for m in modalities]
    # The tiny preset's tokens are bytes: a caption needs more new tokens than the task default.
    generation = GenerationConfig(max_new_tokens=96 if kind == "caption" else 32)
    results = run_eval(
        model,
        tasks,
        data_root,
        out,
        generation,
        prompting=Prompting.BARE if bare_prompt else Prompting.TEMPLATE,
        batch_size=32,
        max_samples=samples,
        model_name=str(model_dir),
        scorer=scorer,
    )
    return {r["modality"]: r for r in results}


def _example(out: Path, task: str) -> str:
    import json

    lines = (out / task / "predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[0]) if lines else {"prediction": "", "references": [""]}
    return f"{row['prediction']!r} (reference: {row['references'][0]!r})"


def run(
    preset: str = "tiny",
    seed: int = 0,
    out: str = "quickstart-run",
    per_modality: int = 400,
    steps_scale: float = 1.0,
    eval_samples: int = 40,
    batch_size: int = 16,
    replay_samples: int = 300,
    audio_visual: bool = False,
) -> dict[str, Any]:
    from .data.synth.world import synthesize_world
    from .eval.metrics import CaptionScorer

    start = time.perf_counter()
    work = Path(out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    synth, runs, evals = work / "data" / "synth", work / "runs", work / "eval"
    print(f"[1/5] synthesizing {per_modality} samples per modality into {synth}")
    synthesize_world(synth, per_modality=per_modality, seed=seed, workers=2)
    configs = {name: _stage_config(name) for name in STAGES}
    modalities = configs[STAGES[2]]["model"]["modalities"]
    first = configs[STAGES[0]]["model"]["modalities"][0]
    # Forgetting is a difference of two scores, so it is measured on a larger held-out
    # set than the per-modality table: a test-only world of the first stage's modality.
    probe = work / "data" / "replay-probe"
    synthesize_world(
        probe, per_modality=replay_samples, seed=seed + 1, modalities=[first], split_fractions=(0, 0, 1), progress=False
    )
    print(f"[2/5] training stages 1-{5 if audio_visual else 4} on the {preset} preset")
    stages = [*STAGES, AUDIO_VISUAL_STAGE] if audio_visual else list(STAGES)
    for name in stages:
        config = configs.get(name) or _stage_config(name)
        _fit(work, config, work / "configs" / f"{name}.yaml", preset, seed, steps_scale, batch_size)
    print("[3/5] the same stages 2-3 without replay")
    for number, name in ((2, STAGES[1]), (3, STAGES[2])):
        earlier = configs[STAGES[number - 2]]["model"]["modalities"]
        _fit(
            work,
            _without_replay(configs[name], number, earlier),
            work / "configs" / f"{name}-noreplay.yaml",
            preset,
            seed,
            steps_scale,
            batch_size,
        )
    print("[4/5] evaluating captions on held-out samples")
    shutil.rmtree(evals, ignore_errors=True)  # predictions of an earlier run's models are stale
    _untrained(preset, modalities, runs / "untrained")
    # One METEOR process for every evaluation: its Java start-up costs seconds each time.
    with CaptionScorer() as scorer:
        # Stages 1-3 align without a prompt template, so they caption right after the tokens.
        table = {
            "untrained": _evaluate(
                runs / "untrained", modalities, "caption", evals / "untrained", eval_samples, synth, scorer
            ),
            "stage3": _evaluate(
                runs / "stage3/export", modalities, "caption", evals / "stage3", eval_samples, synth, scorer, True
            ),
            "stage4": _evaluate(
                runs / "stage4/export", modalities, "caption", evals / "stage4", eval_samples, synth, scorer
            ),
        }
        replay = {
            run_name: _evaluate(
                runs / run_name / "export", [first], "caption", evals / "replay" / run_name, None, probe, scorer, True
            )
            for run_name in ("stage1", "stage3", "stage3-noreplay")
        }
        qa = _evaluate(runs / "stage4/export", modalities, "qa", evals / "stage4-qa", eval_samples, synth, scorer)
        print("[5/5] results")
        summary = _report(table, qa, modalities, evals, first, replay)
        if audio_visual:
            summary["audio_visual"] = _audio_visual(
                runs / "stage5/export", synth / f"{AUDIO_VISUAL_SCENE}.jsonl", evals / "audio-visual", scorer
            )
    summary["wall_time_s"] = round(time.perf_counter() - start, 1)
    print(f"done in {summary['wall_time_s']:.0f} s; everything is under {work}")
    return summary


def _audio_visual(model_dir: Path, manifest: Path, out: Path, scorer: CaptionScorer) -> dict[str, dict[str, float]]:
    """Caption CIDEr and QA accuracy on the held-out audio-visual samples, asked with both
    inputs, with the video alone and with the sound alone."""
    from transformers import GenerationConfig

    from .eval.runner import run_eval
    from .eval.tasks import manifest_tasks, with_inputs
    from .model.onellm import OneLLM

    model = OneLLM.from_pretrained(model_dir)
    tasks = manifest_tasks(manifest)
    runs = {"video + audio": tasks, **{f"{m} only": [with_inputs(t, [m]) for t in tasks] for m in ("video", "audio")}}
    rows = {}
    for label, chosen in runs.items():
        results = {
            r["kind"]: r["metrics"]
            for r in run_eval(
                model,
                chosen,
                None,
                out,
                GenerationConfig(max_new_tokens=96),
                prompting=Prompting.TEMPLATE,
                batch_size=32,
                model_name=str(model_dir),
                scorer=scorer,
            )
        }
        qa = results["qa"]
        rows[label] = {
            METRIC: results["caption"][METRIC],
            "qa_accuracy": qa["accuracy"],
            "qa_majority": qa["accuracy_majority"],
            "visual_questions": qa.get("accuracy[visual]", float("nan")),
            "audio_questions": qa.get("accuracy[audio]", float("nan")),
        }
    print(f"\naudio-visual stage, {manifest.name} test split: caption {METRIC} and QA accuracy by the inputs given")
    print(
        "| inputs | caption CIDEr | QA acc. | QA majority answer | questions on the picture | questions on the sound |"
        "\n|---|---|---|---|---|---|"
    )
    for label, row in rows.items():
        print(
            f"| {label} | {row[METRIC]:.2f} | {row['qa_accuracy']:.2f} | {row['qa_majority']:.2f} | "
            f"{row['visual_questions']:.2f} | "
            f"{row['audio_questions']:.2f} |"
        )
    return rows


def _untrained(preset: str, modalities: list[str], directory: Path) -> None:
    """The same preset before any training: the baseline every metric is compared with."""
    from .config import OneLLMConfig
    from .model.onellm import OneLLM

    config = OneLLMConfig.from_preset(preset)
    config.modalities = {m: config.modalities[m] for m in modalities}
    OneLLM(config).save_pretrained(directory)


def _metric(results: dict[str, dict[str, Any]], modality: str, name: str = METRIC) -> float:
    return float(results[modality]["metrics"].get(name, float("nan"))) if modality in results else float("nan")


def _report(
    table: dict[str, dict[str, dict[str, Any]]],
    qa: dict[str, dict[str, Any]],
    modalities: list[str],
    evals: Path,
    first: str,
    replay: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    print(f"\ncaption {METRIC} on held-out synthetic samples (BLEU-4 in brackets), QA accuracy after stage 4")
    print("| modality | untrained | stage 3 | stage 4 | QA acc. | QA majority answer |\n|---|---|---|---|---|---|")
    rows = {}
    for m in modalities:
        rows[m] = {s: _metric(table[s], m) for s in ("untrained", "stage3", "stage4")}
        rows[m]["qa_accuracy"] = _metric(qa, m, "accuracy")
        rows[m]["qa_majority"] = _metric(qa, m, "accuracy_majority")
        text = " | ".join(
            f"{_metric(table[s], m):.2f} ({_metric(table[s], m, 'BLEU-4'):.2f})"
            for s in ("untrained", "stage3", "stage4")
        )
        print(f"| {m} | {text} | {rows[m]['qa_accuracy']:.2f} | {rows[m]['qa_majority']:.2f} |")
    stage1, kept, lost = (_metric(replay[r], first) for r in ("stage1", "stage3", "stage3-noreplay"))
    share = (lambda v: f"{v / stage1:.0%} of stage 1") if stage1 > 0 else (lambda v: "stage 1 scored 0")
    count = replay["stage1"][first]["samples"]
    print(
        f"\n{first} caption {METRIC} on {count} samples of a separate test world: after stage 1 {stage1:.2f}; "
        f"after stage 3 with replay {kept:.2f} ({share(kept)}), without replay {lost:.2f} ({share(lost)})"
    )
    print("\none generated caption per modality (stage 4):")
    for m in modalities:
        print(f"  {m:>7}: {_example(evals / 'stage4', f'synth-caption-{m}')}")
    return {
        "captions": rows,
        "replay": {"modality": first, "stage1": stage1, "stage3_replay": kept, "stage3_no_replay": lost},
    }
