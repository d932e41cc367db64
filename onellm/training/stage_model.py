"""The model a training stage starts from: a preset or a saved model, or the previous stage's
export grown by the stage's new modalities."""

from __future__ import annotations

from ..config import resolve_model
from ..model.onellm import OneLLM


def build_stage_model(
    model: str, modalities: list[str] | None, init_from: str | None, copy_from: str | None = None
) -> OneLLM:
    """The model of one training stage.

    Without `init_from`: the preset or directory `model`, restricted to `modalities`.
    With it: the previous stage's export, grown by the `modalities` it lacks, whose
    tokenizer options come from `model` and whose UPM parts start as copies of `copy_from`'s
    (by default the export's first modality: image, as published).
    """
    config, directory = resolve_model(model)
    if init_from is None:
        if directory is not None:
            net = OneLLM.from_pretrained(directory)
            unknown = set(modalities or []) - set(net.modalities)
            if unknown:
                raise ValueError(f"{model} has no {sorted(unknown)}; grow it with init_from instead")
            return net
        if modalities:
            unknown = set(modalities) - set(config.modalities)
            if unknown:
                raise ValueError(f"preset {model!r} has no options for modalities {sorted(unknown)}")
            config.modalities = {m: config.modalities[m] for m in modalities}
        return OneLLM(config)
    net = OneLLM.from_pretrained(init_from)
    for m in modalities or []:
        if m not in net.modalities:
            net.add_modality(m, config.modalities.get(m), copy_from=copy_from)
    return net
