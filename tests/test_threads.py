"""No library call changes the process's thread settings: a process set to one torch thread
loads a file of every modality (the point cloud's FPS runs on numba), trains a step on it and
generates, and is still at one thread. DataLoader workers and multi-process jobs rely on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # every modality in a subprocess

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    from onellm import OneLLM
    from onellm.data.manifest import read_manifest
    from onellm.data.synth.world import synthesize_world
    from onellm.inputs import load_input
    from onellm.model.modality_batch import ModalityBatch

    # Every modality's world, and the scenes of several inputs (a video with its soundtrack).
    manifests = synthesize_world(Path(sys.argv[1]), per_modality=1, progress=False)
    model = OneLLM.from_pretrained("tiny")
    changed = []
    for name, manifest in manifests.items():
        sample = read_manifest(manifest)[0]
        parts = sample.input_list()
        text = model.processor([model.processor.placeholders([p.modality for p in parts])], answers=["a caption"])
        for train in (True, False):
            pairs = [(p.modality, load_input(p.paths, p.modality, model.tokenizers[p.modality], train=train,
                                             meta=p.meta)) for p in parts]
            model(**text, inputs=ModalityBatch.of_samples([pairs])).loss.backward()
        model.answer([(m, x[None]) for m, x in pairs], max_new_tokens=2)
        if torch.get_num_threads() != 1:
            changed.append(f"{name}: {torch.get_num_threads()}")
    print("worlds", len(manifests), "changed", changed)
""")


def test_no_modality_changes_torch_threads(tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "worlds 9 changed []" in run.stdout, run.stdout  # eight modalities and the audio-visual scene
