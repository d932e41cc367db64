"""The stage's export: the model in save_pretrained form at the end of fit, with the prompting
its data trained (the caption stages train the bare form, instruction tuning the template),
and the weights BestCheckpoint put back when training ended (on_train_end, before this)."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from .. import sharding


class Export(L.Callback):
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        prompting = getattr(trainer.datamodule, "prompting", None)
        if prompting is not None:
            pl_module.model.config.prompting = prompting.value
        # A sharded model is gathered by every rank into an ordinary one on rank 0.
        if sharding.is_sharded(pl_module.model):
            exported = sharding.unsharded_copy(pl_module.model, pl_module._unsharded_model)
        else:
            exported = pl_module.model if trainer.is_global_zero else None
        if exported is not None:
            exported.save_pretrained(self.directory)
