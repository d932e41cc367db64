"""The README's main command at a small scale: world, four stages (and the audio-visual
fifth), the no-replay ablation, evaluation against the untrained model, and the tables."""

import json

import pytest

from onellm.quickstart import run

pytestmark = pytest.mark.slow  # the quickstart at a small scale


def test_quickstart_end_to_end(tmp_path, capsys):
    summary = run(
        out=str(tmp_path / "qs"),
        per_modality=24,
        steps_scale=0.01,
        eval_samples=2,
        batch_size=4,
        replay_samples=3,
        audio_visual=True,
    )
    modalities = ["image", "video", "audio", "point", "depth", "normal", "imu", "fmri"]
    assert list(summary["captions"]) == modalities
    for row in summary["captions"].values():
        assert set(row) == {"untrained", "stage3", "stage4", "qa_accuracy", "qa_majority"}
        assert 0 < row["qa_majority"] <= 1  # the baseline beside every QA figure
    assert set(summary["replay"]) == {"modality", "stage1", "stage3_replay", "stage3_no_replay"}
    assert summary["replay"]["modality"] == "image"
    work = tmp_path / "qs"
    for stage in ("stage1", "stage2", "stage3", "stage4", "stage5", "stage2-noreplay", "stage3-noreplay"):
        assert (work / "runs" / stage / "export" / "onellm.safetensors").is_file(), stage
    # The no-replay ablation trained only the new modalities.
    steps = json.loads((work / "runs" / "stage3-noreplay" / "csv" / "rank0.json").read_text())["steps"]
    assert {m for _, m in steps} <= {"depth", "normal", "imu", "fmri"}
    out = capsys.readouterr().out
    assert "| modality | untrained | stage 3 | stage 4 | QA acc. | QA majority answer |" in out
    assert all(f"| {m} |" in out for m in modalities)
    results = json.loads((work / "eval" / "stage4" / "results.json").read_text())
    assert {r["modality"] for r in results["tasks"]} == set(modalities)
    probe = json.loads((work / "eval" / "replay" / "stage3" / "results.json").read_text())["tasks"]
    assert [(r["modality"], r["samples"]) for r in probe] == [("image", 3)]
    assert "caption CIDEr on 3 samples of a separate test world" in out
    # Stage 5 trained video+audio batches and was asked with both inputs and with each alone.
    steps = json.loads((work / "runs" / "stage5" / "csv" / "rank0.json").read_text())["steps"]
    assert "video+audio" in {m for _, m in steps}
    assert list(summary["audio_visual"]) == ["video + audio", "video only", "audio only"]
    assert all(
        set(row) == {"CIDEr", "qa_accuracy", "qa_majority", "visual_questions", "audio_questions"}
        for row in summary["audio_visual"].values()
    )
    assert "| inputs | caption CIDEr | QA acc. | QA majority answer | questions on the picture |" in out
    tasks = json.loads((work / "eval" / "audio-visual" / "results.json").read_text())["tasks"]
    assert {r["task"] for r in tasks} == {
        f"manifest-{kind}-audiovisual{only}" for kind in ("caption", "qa") for only in ("", "@video", "@audio")
    }
