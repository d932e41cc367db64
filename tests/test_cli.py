"""The `onellm` command on real files."""

import subprocess
import sys
import types

import numpy as np
import pytest
from media_files import bar_clip
from PIL import Image

from onellm.cli import main


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "onellm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "caption" in out.stdout and "modalities" in out.stdout


def test_caption_png_and_npy(tmp_path, capsys, monkeypatch):
    from onellm.model.onellm import OneLLM

    # An untrained model may generate tabs and line breaks; they must not split the output line.
    real = OneLLM.answer
    monkeypatch.setattr(OneLLM, "answer", lambda self, *a, **k: [t + "\tand\nmore" for t in real(self, *a, **k)])
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "w.npy", np.random.default_rng(1).normal(size=(6, 400)).astype(np.float32))
    assert (
        main(["caption", "--model", "tiny", "--max-new-tokens", "4", str(tmp_path / "a.png"), str(tmp_path / "w.npy")])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        [str(tmp_path / "a.png"), "image"],
        [str(tmp_path / "w.npy"), "imu"],
    ]
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
    args = [
        "caption",
        "--modality",
        "imu",
        "--meta",
        "sample_rate=50",
        "--max-new-tokens",
        "2",
        str(tmp_path / "walk.npy"),
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.split("\t")[1] == "imu"


def test_a_failure_is_one_line_with_the_hint_when_it_fits(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["caption", str(tmp_path)]) == 2
    said = f"onellm caption: error: {tmp_path}: is a directory; pass the files in it"
    assert capsys.readouterr().err == said + " (--debug for the traceback)\n"
    monkeypatch.setenv("COLUMNS", str(len(said) + 5))
    assert main(["caption", str(tmp_path)]) == 2
    assert capsys.readouterr().err == said + "\n"


def test_unknown_modality_names_the_installed_ones(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 4), np.float32))
    assert main(["caption", "--modality", "sonar", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("onellm caption: error: unknown modality 'sonar'; installed: audio, ")
    assert "plugin" in err and err.count("\n") == 1 and '"' not in err


def test_debug_flag_and_variable_show_the_traceback(tmp_path, monkeypatch):
    from onellm.errors import BadInputError

    with pytest.raises(BadInputError, match="is a directory"):
        main(["--debug", "caption", str(tmp_path)])
    monkeypatch.setenv("ONELLM_DEBUG", "1")
    with pytest.raises(BadInputError, match="is a directory"):
        main(["caption", str(tmp_path)])


def test_lightning_commands_and_interrupts_end_in_one_line(monkeypatch, capsys):
    """A checkpoint that torch refuses to unpickle, as fit --ckpt_path would meet it."""
    import pickle

    seen = []

    def run(argv):
        seen.append(argv)
        raise pickle.UnpicklingError("Weights only load failed.\nPlease file an issue.")

    monkeypatch.setitem(sys.modules, "onellm.training.cli", types.SimpleNamespace(run=run))
    assert main(["fit", "--ckpt_path", "evil.ckpt"]) == 2
    assert capsys.readouterr().err.startswith("onellm fit: error: UnpicklingError: Weights only load failed. Please")
    with pytest.raises(pickle.UnpicklingError):
        main(["--debug", "fit", "--ckpt_path", "evil.ckpt"])
    assert seen[-1] == ["fit", "--ckpt_path", "evil.ckpt"]  # --debug is not Lightning's

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "onellm.training.cli", types.SimpleNamespace(run=interrupted))
    assert main(["fit"]) == 130
    assert capsys.readouterr().err == "onellm fit: interrupted\n"


def test_pickle_in_place_of_the_weights_is_one_line_and_never_runs(tmp_path, capsys):
    import os
    import pickle

    from onellm.model.onellm import OneLLM

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    OneLLM.from_pretrained("tiny").save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "onellm.safetensors").write_bytes(pickle.dumps(Payload()))
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    assert main(["caption", "--model", str(tmp_path / "model"), str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the LLM's own loading bar
    weights = tmp_path / "model" / "onellm.safetensors"
    assert err.startswith(f"onellm caption: error: {weights}: not a readable safetensors file")
    assert not (tmp_path / "pwned").exists()


def test_caption_asks_as_the_model_was_trained_unless_told(tmp_path, capsys, monkeypatch):
    import torch

    from onellm.config import OneLLMConfig
    from onellm.model.onellm import OneLLM

    config = OneLLMConfig.from_preset("tiny")
    config.modalities, config.prompting = {"image": {}}, "bare"  # as exported after a caption stage
    OneLLM(config).save_pretrained(tmp_path / "aligned")
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    prompts = []

    def generate(self, input_ids, attention_mask, modality_mask, modality=None, inputs=None, **kwargs):
        prompts.append(
            self.processor.tokenizer.decode(input_ids[0][~modality_mask[0]].tolist(), skip_special_tokens=True)
        )
        return torch.tensor([[ord("x")]])

    monkeypatch.setattr(OneLLM, "generate", generate)
    run = ["caption", "--model", str(tmp_path / "aligned"), str(tmp_path / "a.png")]
    for extra in ([], ["--question", ""], ["--bare-prompt"], ["--template"], ["--question", "What colour?"]):
        assert main(run + extra) == 0
    assert prompts[:3] == ["", "", ""]  # only the modality tokens: nothing asked
    assert "Provide a one-sentence caption" in prompts[3] and "### Assistant:" in prompts[3]
    assert "What colour?" in prompts[4]
    capsys.readouterr()
    assert main(run + ["--bare-prompt", "--question", "What colour?"]) == 2
    assert "--bare-prompt asks nothing" in capsys.readouterr().err


def _expected(model, inputs: dict) -> str:
    from onellm.inputs import load_input

    loaded = {m: load_input([p], m, model.tokenizers[m]).unsqueeze(0) for m, p in inputs.items()}
    return " ".join(model.answer(loaded, max_new_tokens=4)[0].split())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(a model, its directory): a preset's weights are random, so the command loads these."""
    from onellm.model.onellm import OneLLM

    model, directory = OneLLM.from_pretrained("tiny").eval(), tmp_path_factory.mktemp("tiny")
    model.save_pretrained(directory)
    return model, str(directory)


def test_caption_together_is_one_prompt_of_all_the_files(tmp_path, capsys, tiny):
    import soundfile

    clip = bar_clip(tmp_path / "clip.mp4")
    soundfile.write(tmp_path / "tone.wav", np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000)
    files = [str(clip), str(tmp_path / "tone.wav")]
    model, directory = tiny
    assert main(["caption", "--model", directory, "--max-new-tokens", "4", *files, "--together"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    named, modalities, text = out.rstrip("\n").split("\t")
    assert named == "+".join(files) and modalities == "video+audio"
    assert text == _expected(model, {"video": clip, "audio": tmp_path / "tone.wav"})
    # Given modalities, repeated or comma-separated, one per file in order.
    given = ["--modality", "video", "--modality", "audio"]
    assert main(["caption", "--model", directory, "--max-new-tokens", "4", "--together", *given, *files]) == 0
    assert capsys.readouterr().out == out


def test_with_audio_asks_each_video_with_its_own_sound(tmp_path, capsys, tiny):
    clip = bar_clip(tmp_path / "clip.mp4")
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "a.png")
    model, directory = tiny
    assert (
        main(
            [
                "caption",
                "--model",
                directory,
                "--max-new-tokens",
                "4",
                "--with-audio",
                str(clip),
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [[str(clip), "video+audio"], [str(tmp_path / "a.png"), "image"]]
    assert lines[0].split("\t")[2] == _expected(model, {"video": clip, "audio": clip})


def test_with_audio_tells_of_a_silent_video_and_goes_on(tmp_path, capsys):
    silent, clip = bar_clip(tmp_path / "silent.mp4", sound=False), bar_clip(tmp_path / "clip.mp4")
    assert main(["caption", "--max-new-tokens", "2", "--with-audio", str(silent), str(clip)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"onellm caption: error: {silent}: audio: no audio stream; "
        "leave out --with-audio to caption its pictures alone\n"
    )
    assert [line.split("\t")[:2] for line in captured.out.splitlines()] == [[str(clip), "video+audio"]]
    assert main(["caption", "--max-new-tokens", "2", str(silent)]) == 0  # its pictures alone


def test_several_inputs_options_that_do_not_fit_are_one_line(tmp_path, capsys):
    from onellm.config import OneLLMConfig
    from onellm.model.onellm import OneLLM

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "b.png")
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    said = {
        "one --modality per file, in order (2 files, 1 given)": ["--together", "--modality", "image", a, b],
        "several --modality values name each file's modality with --together": ["--modality", "image,video", a, b],
    }
    for expected, args in said.items():
        assert main(["caption", *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1
    assert main(["caption", "--max-new-tokens", "2", "--together", a, b]) == 0  # two images in one prompt
    assert capsys.readouterr().out.split("\t")[:2] == [f"{a}+{b}", "image+image"]
    config = OneLLMConfig.from_preset("tiny")
    config.modalities = {"image": {}, "video": {}}
    OneLLM(config).save_pretrained(tmp_path / "silent-model")
    capsys.readouterr()
    assert main(["caption", "--model", str(tmp_path / "silent-model"), "--with-audio", a]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the LLM's own loading bar
    assert err.startswith(f"onellm caption: error: --with-audio needs a model with an audio input; {tmp_path}")
