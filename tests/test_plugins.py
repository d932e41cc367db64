"""Modality plugins: discovery through entry points, clear reports of broken ones."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[onellm.modalities]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def _python(code: str, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=site
    )


BROKEN = "raise ImportError('needs the sonar SDK')\n"
WRONG_SHAPE = """
from dataclasses import dataclass
import torch
from onellm import ModalitySpec, ModalityTokenizer, TokenGrid

@dataclass
class Options:
    pass

class Squashed(ModalityTokenizer):
    Options = Options
    def __init__(self, encoder, options):
        super().__init__(encoder, options)
        self.input_shape, self.num_patches = (4,), 4
    def tokenize(self, x, encoder):
        # one token short, and the wrong width: the model must say so
        return TokenGrid(torch.zeros(x.shape[0], 1, 3, 7), torch.zeros(4, 7))

SQUASHED = ModalitySpec(name="squashed", tokenizer=Squashed)
"""


def test_broken_plugins_are_reported_and_others_keep_working(tmp_path):
    _fake_distribution(tmp_path, "onellm-sonar", {"sonar": "sonar_plugin:SONAR"}, {"sonar_plugin": BROKEN})
    _fake_distribution(
        tmp_path, "onellm-squashed", {"squashed": "squashed_plugin:SQUASHED"}, {"squashed_plugin": WRONG_SHAPE}
    )
    out = _python(
        """
        import warnings, torch
        warnings.simplefilter("ignore")
        from onellm import OneLLM, OneLLMConfig, list_modalities
        from onellm.registry import failed_modalities, get_modality
        print("LISTED", *sorted(list_modalities()))
        print("FAILED", failed_modalities()["sonar"])
        try:
            get_modality("sonar")
        except RuntimeError as err:
            print("ERROR", err)
        config = OneLLMConfig.from_preset("tiny")
        config.modalities["squashed"] = {}
        model = OneLLM(config)
        try:
            model.encode("squashed", torch.zeros(1, 4))
        except ValueError as err:
            print("SHAPE", err)
        tokens, _ = model.encode("imu", torch.zeros(1, 6, 400))
        print("IMU", tuple(tokens.shape))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert "squashed" in lines["LISTED"] and "image" in lines["LISTED"] and "sonar" not in lines["LISTED"]
    assert "onellm-sonar" in lines["FAILED"] and "needs the sonar SDK" in lines["FAILED"]
    assert "'sonar' is installed but failed to load" in lines["ERROR"]
    assert lines["SHAPE"].startswith("squashed tokenizer returned patches of shape [1, 1, 3, 7]")
    assert lines["IMU"] == "(1, 10, 128)"


def test_modalities_command_shows_failures(tmp_path):
    _fake_distribution(tmp_path, "onellm-sonar", {"sonar": "sonar_plugin:SONAR"}, {"sonar_plugin": BROKEN})
    out = _python("import sys; from onellm.cli import main; sys.exit(main(['modalities']))", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sonar" in out.stdout and "failed to load" in out.stdout and "image" in out.stdout


def test_duplicate_names_across_distributions_are_refused(tmp_path):
    _fake_distribution(
        tmp_path, "onellm-imu2", {"imu": "imu2:IMU"}, {"imu2": "from onellm.tokenizers.imu import IMU\n"}
    )
    out = _python("from onellm import list_modalities; list_modalities()", tmp_path)
    assert out.returncode != 0
    assert "registered by both" in out.stderr and "onellm-imu2" in out.stderr


@pytest.mark.slow
def test_example_plugin_installs_trains_captions_and_uninstalls(tmp_path):
    """The ECG example end to end: pip-installed, listed, synthesized, trained into a model
    that only knew image (with image replayed), captioned; without it the built-ins remain."""
    site = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(ROOT / "examples" / "ecg_plugin"),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore"}

    def onellm(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "onellm.cli", *args], capture_output=True, text=True, env=env, cwd=work, timeout=600
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    listed = onellm("modalities")
    assert any(line.startswith("ecg ") and "onellm-ecg" in line for line in listed.splitlines())
    onellm("data", "synth", "--out", "data/synth", "--modalities", "ecg,image", "--per-modality", "24")
    stage = ROOT / "examples" / "ecg_plugin" / "stage-ecg.yaml"
    base = work / "runs" / "stage3" / "export"
    code = f"from onellm import OneLLM; OneLLM.from_preset('tiny', modalities={{'image': {{}}}}).save_pretrained({str(base)!r})"
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=work).returncode == 0
    datasets = (
        '[{"manifest": "$DATA_ROOT/ecg.jsonl", "modality": "ecg", "weight": 1.0},'
        ' {"manifest": "$DATA_ROOT/image.jsonl", "modality": "image", "weight": 1.0}]'
    )
    onellm(
        "fit",
        "--config",
        str(stage),
        "--model.modalities",
        "[image, ecg]",
        "--data.datasets",
        datasets,
        "--trainer.max_steps",
        "4",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.enable_progress_bar",
        "false",
        "--data.batch_size",
        "4",
    )
    record = (work / "runs" / "stage-ecg" / "csv" / "rank0.json").read_text()
    assert '"ecg"' in record
    ecg_file = sorted((work / "data" / "synth" / "ecg").glob("*.ecg.npy"))[0]
    captioned = onellm("caption", "--model", "runs/stage-ecg/export", "--max-new-tokens", "4", str(ecg_file))
    assert captioned.split("\t")[1] == "ecg"
    # "Uninstalled": the same checks without the plugin on the path.
    out = subprocess.run(
        [sys.executable, "-m", "onellm.cli", "modalities"],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert out.returncode == 0 and "ecg" not in out.stdout and "fmri" in out.stdout
