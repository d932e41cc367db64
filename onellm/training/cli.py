"""`onellm fit | validate | test | predict`: LightningCLI over OneLLMModule and OneLLMDataModule."""
from __future__ import annotations

import sys
import warnings
from unittest import mock

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from .checkpoint_io import AtomicCheckpointIO
from .datamodule import OneLLMDataModule
from .module import OneLLMModule


def run(argv: list[str]) -> None:
    # Frozen parts (a pretrained LLM loads in eval mode) stay that way on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # LightningCLI warns when given args while sys.argv holds others (`onellm quickstart`
    # calls it from Python); handing it argv as the command line says the same without that.
    with mock.patch.object(sys, "argv", [sys.argv[0], *argv]):
        LightningCLI(
            OneLLMModule,
            OneLLMDataModule,
            trainer_defaults={
                # A class path rather than an instance, so the saved config.yaml can hold it.
                "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
                "callbacks": [LearningRateMonitor(logging_interval="step"),
                              ModelCheckpoint(save_last=True, every_n_train_steps=50)],
                "log_every_n_steps": 5,
                # The replay sampler already gives each rank its share of every step.
                "use_distributed_sampler": False,
            },
            save_config_kwargs={"overwrite": True},
        )
