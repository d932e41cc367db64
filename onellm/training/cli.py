"""`onellm fit | validate | test | predict`: LightningCLI over OneLLMModule and OneLLMDataModule."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .best import BestCheckpoint
from .checkpoint_io import AtomicCheckpointIO
from .datamodule import OneLLMDataModule
from .module import OneLLMModule


class OneLLMCLI(LightningCLI):
    """Checkpointing is always on and configured in its own section (`checkpoint:` in a
    stage config, `--checkpoint.every_n_train_steps 20` on the command line); `best:` chooses
    the weights the export gets (`--best.monitor val/loss_image`, or null for the last)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 50})
        parser.add_lightning_class_args(BestCheckpoint, "best")
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="torch intra-op threads of each training process (default: torch's own)")

    def before_instantiate_classes(self) -> None:
        # Several runs on one machine each take every core unless told otherwise.
        threads = self.config[self.subcommand].get("threads")
        if threads:
            torch.set_num_threads(threads)


def run(argv: list[str]) -> None:
    # Frozen parts (a pretrained LLM loads in eval mode) stay that way on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # `onellm quickstart` calls this from Python, while sys.argv holds its own command line.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    OneLLMCLI(
        OneLLMModule,
        OneLLMDataModule,
        args=argv,
        trainer_defaults={
            # A class path rather than an instance, so the saved config.yaml can hold it.
            "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
            "log_every_n_steps": 5,
            # A run is one epoch of max_steps batches from the replay sampler.
            "max_epochs": 1,
            # The replay sampler already gives each rank its share of every step.
            "use_distributed_sampler": False,
        },
        save_config_kwargs={"overwrite": True},
    )
