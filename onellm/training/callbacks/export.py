"""The stage's export: the model in save_pretrained form at the end of fit, with the prompting
its data trained (the caption stages train the bare form, instruction tuning the template),
and the weights BestCheckpoint put back when training ended (on_train_end, before this)."""
from __future__ import annotations

from pathlib import Path

import lightning as L


class Export(L.Callback):
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        prompting = getattr(trainer.datamodule, "prompting", None)
        if prompting is not None:
            pl_module.model.config.prompting = prompting.value
        pl_module.model.save_pretrained(self.directory)
