"""The `onellm` command on real files."""
import subprocess
import sys

import numpy as np
from PIL import Image

from onellm.cli import main


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "onellm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "caption" in out.stdout and "modalities" in out.stdout


def test_caption_png_and_npy(tmp_path, capsys, monkeypatch):
    from onellm.model.onellm import OneLLM

    # An untrained model may generate tabs and line breaks; they must not split the output line.
    real = OneLLM.caption
    monkeypatch.setattr(OneLLM, "caption", lambda self, *a, **k: [t + "\tand\nmore" for t in real(self, *a, **k)])
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "w.npy", np.random.default_rng(1).normal(size=(6, 400)).astype(np.float32))
    assert main(["caption", "--model", "tiny", "--max-new-tokens", "4", str(tmp_path / "a.png"), str(tmp_path / "w.npy")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [[str(tmp_path / "a.png"), "image"], [str(tmp_path / "w.npy"), "imu"]]
    assert all(line.count("\t") == 2 for line in lines)


def test_bad_inputs_name_the_file(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((5, 5), dtype=np.float32))
    assert main(["caption", "--modality", "imu", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "bad.npy" in err and "6 IMU channels" in err and "[5, 5]" in err
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["caption", str(tmp_path / "broken.png")]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_modalities_table(capsys):
    assert main(["modalities", "--preset", "onellm-7b"]) == 0
    out = capsys.readouterr().out
    assert "audio" in out and "1212" in out and "onellm-any" in out


def test_caption_passes_meta_to_the_loader(tmp_path, capsys):
    np.save(tmp_path / "walk.npy", np.random.default_rng(2).normal(size=(100, 6)).astype(np.float32))
    assert main(["caption", "--modality", "imu", str(tmp_path / "walk.npy")]) == 2
    assert "walk.npy" in capsys.readouterr().err
    args = ["caption", "--modality", "imu", "--meta", "sample_rate=50", "--max-new-tokens", "2", str(tmp_path / "walk.npy")]
    assert main(args) == 0
    assert capsys.readouterr().out.split("\t")[1] == "imu"
