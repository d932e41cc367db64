"""`onellm fit | validate | test | predict`: LightningCLI over OneLLMModule and OneLLMDataModule."""
from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from .checkpoint_io import AtomicCheckpointIO
from .datamodule import OneLLMDataModule
from .module import OneLLMModule


def run(argv: list[str]) -> None:
    LightningCLI(
        OneLLMModule,
        OneLLMDataModule,
        args=argv,
        trainer_defaults={
            "plugins": [AtomicCheckpointIO()],
            "callbacks": [LearningRateMonitor(logging_interval="step"),
                          ModelCheckpoint(save_last=True, every_n_train_steps=50)],
            "log_every_n_steps": 5,
            # The replay sampler already gives each rank its share of every step.
            "use_distributed_sampler": False,
        },
        save_config_kwargs={"overwrite": True},
    )
