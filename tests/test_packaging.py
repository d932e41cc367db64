"""Our tokenizers/ folder never shadows Hugging Face's `tokenizers`, installed or not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = (
    "import transformers, onellm, tokenizers, sys; "
    "assert hasattr(tokenizers, 'Tokenizer'), tokenizers.__file__; "
    "import onellm.tokenizers.image as image; print(onellm.__file__); print(image.__file__)"
)


def _run(code: str, cwd: Path, env: dict | None = None) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_from_repository_root():
    onellm_file, image_file = _run(CHECK, ROOT)
    assert Path(image_file).resolve() == ROOT / "tokenizers" / "image.py"


@pytest.mark.slow
def test_non_editable_install(tmp_path):
    target = tmp_path / "site"
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
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    assert (target / "onellm" / "tokenizers" / "point.py").is_file()
    assert not (target / "tokenizers").exists()  # nothing generic lands in site-packages
    env = {**os.environ, "PYTHONPATH": str(target)}
    onellm_file, image_file = _run(CHECK, tmp_path, env)
    assert Path(onellm_file).is_relative_to(target) and Path(image_file).is_relative_to(target)
    # From the repository root the checkout comes first, and still nothing is shadowed.
    _run(CHECK, ROOT, env)
    listed = _run("import onellm; print(*onellm.list_modalities())", tmp_path, env)
    assert set(listed) == {"image", "video", "audio", "point", "depth", "normal", "imu", "fmri"}
