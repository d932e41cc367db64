"""The export is the best model of the run by a validation metric, not its last step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from .sharding import load_weights


class BestCheckpoint(ModelCheckpoint):
    """Keeps the trained weights of the validation with the best `monitor` (default
    `val/loss`, the mean caption/answer loss over every validated modality) and puts them
    back into the model when training ends (on_train_end: before the Export callback's
    on_fit_end, and after the other checkpoint callbacks saved the last step). A model chosen on
    held-out data, rather than the last step's, is what stops a long run from exporting what
    it memorised. Saved on validation end, so the weights are the ones that were validated;
    `monitor: null` exports the last step's weights."""

    def __init__(
        self,
        monitor: str | None = "val/loss",
        mode: str = "min",
        filename: str = "best",
        dirpath: str | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_weights_only=True,
            save_last=False,
            verbose=verbose,
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        path = Path(self.best_model_path) if self.best_model_path else None
        if self.monitor is None or path is None or not path.exists():
            return
        if path.is_dir():  # a distributed checkpoint (FSDP2): every rank loads its shards
            state = load_weights(pl_module, path)
        else:
            state = trainer.strategy.checkpoint_io.load_checkpoint(path)
            pl_module.load_state_dict(state["state_dict"], strict=False)
        last = trainer.callback_metrics.get(self.monitor)
        rank_zero_info(
            f"export: the weights of step {state.get('global_step')} ({self.monitor} "
            f"{float(self.best_model_score):.4f}, the best of the run; the last validation gave "
            f"{float(last) if last is not None else float('nan'):.4f})"
        )
