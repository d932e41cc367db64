"""A modality is one unit: a package written here into a temporary folder (tokenizer, loader,
synthesizer, preview), registered as its entry point would register it, and then used by
`onellm data synth`, training, `onellm eval --manifest` and the demo's preview without a
line of onellm changed."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import quiet_trainer
from transformers import GenerationConfig

from onellm import OneLLM, OneLLMConfig, register_modality
from onellm.data.manifest import read_manifest
from onellm.data.synth.world import synthesizable_modalities, synthesize_world
from onellm.eval import runner
from onellm.eval.tasks import manifest_tasks
from onellm.registry import MODALITIES, modality_source
from onellm.training.callbacks import BadSamples
from onellm.training.datamodule import OneLLMDataModule
from onellm.training.module import OneLLMModule

PACKAGE = {
    "__init__.py": '''
        """thermal: a 16 x 16 heat map with one hot spot, as a plugin would ship it."""
        from onellm import ModalitySpec

        from .preview import preview
        from .synth import synthesize
        from .tokenizer import ThermalTokenizer, load_thermal

        THERMAL = ModalitySpec(
            name="thermal", tokenizer=ThermalTokenizer, load=load_thermal, extensions=(".thermal.npy",),
            prompt="Where is the hot spot?", synthesize=synthesize, preview=preview,
        )
    ''',
    "tokenizer.py": """
        from dataclasses import dataclass

        import numpy as np
        import torch
        from torch import nn

        from onellm import ModalityTokenizer, TokenGrid
        from onellm.errors import BadInputError
        from onellm.modality import learned_pos_embed


        @dataclass
        class ThermalOptions:
            size: int = 16
            patch: int = 4


        class ThermalTokenizer(ModalityTokenizer):
            Options = ThermalOptions

            def __init__(self, encoder, options):
                super().__init__(encoder, options)
                self.input_shape = (1, options.size, options.size)
                self.num_patches = (options.size // options.patch) ** 2
                self.conv = nn.Conv2d(1, encoder.width, options.patch, stride=options.patch)
                self.pos_embed = learned_pos_embed(self.num_patches + 1, encoder.width)

            def tokenize(self, x, encoder):
                patches = self.conv(x.to(self.conv.weight.dtype)).flatten(2).transpose(1, 2)
                return TokenGrid(patches.unsqueeze(1), self.pos_embed)


        def load_thermal(paths, ctx, train=False, meta=None):
            heat = np.load(paths[0], allow_pickle=False).astype(np.float32)
            if heat.shape != ctx.input_shape[1:]:
                raise BadInputError(paths[0], f"expected {list(ctx.input_shape[1:])}, got {list(heat.shape)}")
            return torch.from_numpy((heat - heat.mean()) / (heat.std() + 1e-6))[None]
    """,
    "synth.py": """
        import numpy as np

        SIDES = {"left": 4, "right": 12}


        def synthesize(out_dir, sample_id, rng):
            side = ["left", "right"][int(rng.integers(2))]
            yy, xx = np.mgrid[:16, :16]
            heat = 20 + 15 * np.exp(-((xx - SIDES[side]) ** 2 + (yy - 8) ** 2) / 8) + rng.normal(0, 0.3, (16, 16))
            np.save(out_dir / f"{sample_id}.thermal.npy", heat.astype(np.float32))
            return {"files": [f"{sample_id}.thermal.npy"], "caption": f"a hot spot on the {side}",
                    "qa": [{"question": "Which side is hot?", "answer": side}], "meta": {"side": side}}
    """,
    "preview.py": """
        from pathlib import Path

        import numpy as np
        from PIL import Image


        def preview(paths):
            heat = np.load(Path(paths[0]))
            scaled = (heat - heat.min()) / max(float(np.ptp(heat)), 1e-6) * 255
            return Image.fromarray(scaled.astype(np.uint8)).resize((64, 64), Image.NEAREST)
    """,
}


@pytest.fixture(scope="module")
def thermal(tmp_path_factory):
    """The package on sys.path and registered (as its entry point would do); a synthetic
    world of it; both gone afterwards."""
    root = tmp_path_factory.mktemp("plugin")
    for name, source in PACKAGE.items():
        (root / "onellm_thermal").mkdir(exist_ok=True)
        (root / "onellm_thermal" / name).write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    try:
        from onellm_thermal import THERMAL

        register_modality(THERMAL, source="onellm-thermal")
        try:
            yield synthesize_world(root / "data", per_modality=16, seed=0, modalities=["thermal"], progress=False)[
                "thermal"
            ]
        finally:
            MODALITIES.unregister("thermal")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("onellm_thermal")]:
            del sys.modules[name]


def test_synth_writes_the_units_samples(thermal):
    assert "thermal" in synthesizable_modalities() and modality_source("thermal") == "onellm-thermal"
    samples = read_manifest(thermal)
    assert len(samples) == 16 and {s.split for s in samples} == {"train", "val", "test"}
    for s in samples:
        side = "left" if np.load(s.paths()[0])[:, :8].mean() > np.load(s.paths()[0])[:, 8:].mean() else "right"
        assert s.caption == f"a hot spot on the {side}" and s.meta["side"] == side


class _NoJava:
    """METEOR runs on Java; without it the caption task still runs and gets its label metrics."""

    spice = False

    def __call__(self, predictions, references):
        return {}


@pytest.mark.slow
def test_train_then_evaluate_a_caption_task_over_its_manifest(thermal, tmp_path):
    config = OneLLMConfig.from_preset("tiny")
    config.modalities = {"thermal": {}}
    torch.manual_seed(0)
    OneLLM(config).save_pretrained(tmp_path / "base")
    module = OneLLMModule(model=str(tmp_path / "base"), lr=1e-3)
    before = module.model.tokenizers["thermal"].conv.weight.detach().clone()
    data = OneLLMDataModule([{"manifest": str(thermal), "modality": "thermal"}], batch_size=4, model=module.model)
    trainer = quiet_trainer(3, tmp_path / "run")
    trainer.fit(module, data)
    assert trainer.global_step == 3 and not any(isinstance(cb, BadSamples) and cb.samples for cb in trainer.callbacks)
    assert not torch.equal(before, module.model.tokenizers["thermal"].conv.weight)  # its tokenizer trained

    task = next(t for t in manifest_tasks(thermal) if t.kind == "caption")
    assert task.modality == "thermal" and task.question(task.items()[0]) == "Where is the hot spot?"
    result = runner.evaluate_task(
        module.model,
        task,
        None,
        tmp_path / "eval",
        GenerationConfig(max_new_tokens=4),
        batch_size=4,
        scorer=None if shutil.which("java") else _NoJava(),
    )
    tests = [s for s in read_manifest(thermal) if s.split == "test"]
    assert result["samples"] == len(tests) > 0 and result["skipped"] == 0
    rows = [json.loads(line) for line in (tmp_path / "eval" / task.name / "predictions.jsonl").read_text().splitlines()]
    assert [(r["id"], r["references"]) for r in rows] == [(s.id, [s.caption]) for s in tests]


def test_the_demo_previews_an_upload(thermal):
    pytest.importorskip("gradio")
    from onellm.demo.app import PREVIEW_KINDS, _previews
    from onellm.demo.chat import modality_choices
    from onellm.inputs import guess_modality

    file = read_manifest(thermal)[0].paths()[0]
    model = OneLLM.from_preset("tiny", modalities={"image": {}, "thermal": {}})
    assert "thermal" in modality_choices(model) and guess_modality(file, dict(model.tokenizers)) == "thermal"
    shown = dict(zip(PREVIEW_KINDS, _previews("thermal", str(file), None)))
    assert shown["image"]["visible"] and isinstance(shown["image"]["value"], Image.Image)
    assert not shown["plot"]["visible"]
