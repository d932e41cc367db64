"""`onellm fit | validate | test | predict`: LightningCLI over OneLLMModule and OneLLMDataModule."""

from __future__ import annotations

import shlex
import sys
import warnings

import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ..errors import Interrupted
from .best import BestCheckpoint
from .checkpoint_io import AtomicCheckpointIO
from .datamodule import OneLLMDataModule
from .disk import DiskSpaceCheck
from .logs import ResumableCSVLogger
from .module import OneLLMModule
from .preemption import PreemptionCheckpoint


class OneLLMCLI(LightningCLI):
    """Checkpointing is always on and configured in its own section (`checkpoint:` in a
    stage config, `--checkpoint.every_n_train_steps 20` on the command line); a signal or
    `max_time` ends training with a checkpoint too, and free disk space is checked. `best:`
    chooses the weights the export gets (`--best.monitor val/loss_image`, or null for the last)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 50})
        # After "checkpoint": Lightning runs checkpoint callbacks in the order they are given.
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.add_lightning_class_args(BestCheckpoint, "best")
        parser.add_lightning_class_args(DiskSpaceCheck, "disk_check")
        parser.link_arguments("model.export_dir", "disk_check.export_dir")
        # The data module reads the samples with the stage's model and replays what init_from learnt.
        parser.link_arguments("model.init_from", "data.init_from")
        parser.link_arguments("model.model", "data.model", apply_on="instantiate")
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="torch intra-op threads of each training process (default: torch's own)",
        )

    def before_instantiate_classes(self) -> None:
        # Several runs on one machine each take every core unless told otherwise.
        threads = self.config[self.subcommand].get("threads")
        if threads:
            torch.set_num_threads(threads)
        resumable_csv_logs(self.config[self.subcommand].get("trainer", {}))

    def _preemption(self) -> PreemptionCheckpoint:
        return next(cb for cb in self.trainer.callbacks if isinstance(cb, PreemptionCheckpoint))

    def before_fit(self) -> None:
        self._preemption().resume_requested = self.config.fit.ckpt_path == "last"

    def after_fit(self) -> None:
        guard = self._preemption()
        if guard.stopped_on_time and self.trainer.is_global_zero:
            export = self.config.fit.model.export_dir
            print(
                f"onellm fit: stopped on time (trainer.max_time) after step {self.trainer.global_step}; "
                f"checkpoint {guard.checkpoint_path}{f'; export {export}' if export else ''}",
                file=sys.stderr,
            )


# Lightning's CSVLogger, however a config names it: it deletes metrics.csv when a run starts
# in its folder, so a resumed run would keep none of the steps logged before the kill.
_CSV_LOGGERS = {"CSVLogger", "lightning.pytorch.loggers.CSVLogger", "lightning.pytorch.loggers.csv_logs.CSVLogger"}


def resumable_csv_logs(trainer: Namespace | dict) -> None:
    """Replace each Lightning CSVLogger of the trainer's config by ResumableCSVLogger (the
    same arguments and files, continued across a resume), saying so in one line."""
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, (Namespace, dict)) and logger.get("class_path") in _CSV_LOGGERS:
            logger["class_path"] = f"{ResumableCSVLogger.__module__}.{ResumableCSVLogger.__name__}"
            rank_zero_info(
                "onellm fit: CSVLogger -> onellm.training.logs.ResumableCSVLogger, whose metrics.csv survives a resume"
            )


def resume_command(argv: list[str]) -> str:
    """The command line `argv` with `--ckpt_path last` in place of any other --ckpt_path."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--ckpt_path="):
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        kept.append(arg)
    return shlex.join(["onellm", *kept, "--ckpt_path", "last"])


def run(argv: list[str]) -> None:
    # Frozen parts (a pretrained LLM loads in eval mode) stay that way on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # `onellm quickstart` calls this from Python, while sys.argv holds its own command line.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    # A first run of `--ckpt_path last` starts fresh; PreemptionCheckpoint says so in one line.
    warnings.filterwarnings("ignore", message=r'.*ckpt_path="last"\) is set, but there is no last checkpoint')
    try:
        _run_cli(argv)
    except Interrupted as err:
        err.resume_command = resume_command(argv)
        raise


def _run_cli(argv: list[str]) -> None:
    try:
        _cli(argv)
    except SIGTERMException as err:
        # Lightning's handler took it, in the sanity check before PreemptionCheckpoint's took over.
        raise Interrupted("stopped by SIGTERM before the first step", None, rank_zero_only.rank == 0) from err
    except SystemExit as err:
        # Lightning turns Ctrl-C before the training loop (data setup) into sys.exit(1): as
        # during the model's loading, an interruption with nothing to save.
        if isinstance(err.__context__, KeyboardInterrupt):
            raise err.__context__ from None
        raise


def _cli(argv: list[str]) -> None:
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
