"""Training ends as clusters end jobs: a signal stops it with a checkpoint of the step it
reached and status 75, resuming from that checkpoint gives the losses of an uninterrupted
run (one process and 2-process DDP), a full disk ends with one line and the previous
checkpoint intact, `--ckpt_path last` starts fresh or resumes, and `max_time` ends with a
checkpoint, the export and status 0."""

import re
from pathlib import Path

import pytest
import yaml
from training_helpers import fit_run, losses, stage_config, write_world

from onellm.errors import EXIT_INTERRUPTED
from onellm.training.checkpoint_io import AtomicCheckpointIO
from onellm.training.disk import checkpoint_bytes, tensor_bytes
from onellm.training.module import OneLLMModule

pytestmark = pytest.mark.slow  # training killed and resumed in subprocesses

PLUGINS = '''
import errno, os, shutil, signal
from collections import namedtuple
from lightning.pytorch.callbacks import Callback


class SignalAt(Callback):
    """Sends `signal` to this process (rank `rank` of the job) as optimizer step `step`
    starts, and SIGTERM once more while the checkpoint it causes is being saved."""
    def __init__(self, step: int, signal: str = "SIGTERM", rank: int = 0) -> None:
        self.step, self.signal, self.rank, self.sent = step, signal, rank, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            self.sent = True
            os.kill(os.getpid(), getattr(signal, self.signal))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.sent:
            os.kill(os.getpid(), signal.SIGTERM)


class FullDiskAt(Callback):
    """The disk reports 1 MB free from the start, and fills up for real, 100 kB into the
    first checkpoint written from optimizer step `step` on."""
    def __init__(self, step: int) -> None:
        self.step = step

    def setup(self, trainer, pl_module, stage):
        usage = namedtuple("usage", "total used free")
        shutil.disk_usage = lambda path: usage(10**9, 10**9 - 10**6, 10**6)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step - 1:
            import onellm.training.checkpoint_io as checkpoint_io
            checkpoint_io.open = full_disk_open


class _FullFile:
    def __init__(self, f):
        self.f, self.room = f, 100_000

    def write(self, data):
        if len(data) > self.room:
            self.f.write(bytes(data[:self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def full_disk_open(path, mode):
    return _FullFile(open(path, mode))
'''


def _plugin_config(tmp: Path, name: str, callback: str, **init_args) -> tuple[str, ...]:
    (tmp / "preempt_plugins.py").write_text(PLUGINS)
    path = tmp / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {"trainer": {"callbacks": [{"class_path": f"preempt_plugins.{callback}", "init_args": init_args}]}}
        )
    )
    return ("--config", str(path))


def _step_of(checkpoint: Path) -> int:
    return AtomicCheckpointIO().load_checkpoint(checkpoint)["global_step"]


def _interrupted_line(stderr: str, signal: str, step: int, checkpoint: Path) -> None:
    """The run's last line: what happened, where the checkpoint is, how to resume."""
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"onellm fit: stopped by {signal} after step {step}; checkpoint (\S+); "
        r"resume with: onellm fit --config \S+ .*--ckpt_path last",
        last,
    ), last
    assert last.split("checkpoint ")[1].split(";")[0] == str(checkpoint)
    assert stderr.count("stopped by") == 1  # one line, from rank 0 alone under DDP


def _signal_and_resume(tmp: Path, steps: int, devices: int, signals: list[tuple[int, str, int]]) -> None:
    """A run interrupted by each (step, signal, rank) in turn, between checkpoints every 4
    steps, and resumed with --ckpt_path last each time: the checkpoint is of the step
    reached, and the losses of every step are those of an uninterrupted run."""
    data = write_world(tmp, per_modality=8)
    config = stage_config(tmp, data, steps, every=4, batch_size=4 // devices)
    fit_run(tmp, config, "full", devices=devices)
    full = losses(tmp / "runs" / "full" / "csv")
    ckpts = Path("runs", "stopped", "csv", "checkpoints")  # as messages name it: from the run's folder
    ckpt_dir = tmp / ckpts
    for i, (step, signal, rank) in enumerate(signals):
        plugin = _plugin_config(tmp, f"signal{i}", "SignalAt", step=step, signal=signal, rank=rank)
        # capture_output waits for every process holding the pipes: each rank has exited.
        out = fit_run(
            tmp, config, "stopped", devices=devices, extra=(*plugin, "--ckpt_path", "last"), expect=EXIT_INTERRUPTED
        )
        assert ("starting fresh" in out.stderr) == (i == 0)
        # The signal came during step `step`; that step finished and was saved.
        assert step % 4 != 3 and _step_of(ckpt_dir / "last.ckpt") == step + 1
        _interrupted_line(out.stderr, signal, step + 1, ckpts / "last.ckpt")
        assert not list(ckpt_dir.glob(".*.tmp"))
    out = fit_run(tmp, config, "stopped", devices=devices, extra=("--ckpt_path", "last"))
    assert re.search(rf"onellm fit: resuming from \S*{ckpts / 'last.ckpt'} at step {signals[-1][0] + 1}\n", out.stderr)
    resumed = losses(tmp / "runs" / "stopped" / "csv")
    assert [s for s, _ in resumed] == list(range(steps))
    assert resumed == full


def test_sigterm_between_checkpoints_saves_that_step_and_resumes_exactly(tmp_path):
    _signal_and_resume(tmp_path, steps=10, devices=1, signals=[(5, "SIGTERM", 0)])


def test_signals_under_two_process_ddp_stop_every_rank_with_one_checkpoint(tmp_path):
    # SIGTERM to rank 1 alone, then Ctrl-C's SIGINT to the launcher (rank 0) alone.
    _signal_and_resume(tmp_path, steps=8, devices=2, signals=[(1, "SIGTERM", 1), (5, "SIGINT", 0)])


def test_a_full_disk_ends_in_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    data = write_world(tmp_path, per_modality=8)
    config = stage_config(tmp_path, data, steps=6, every=2, batch_size=4)
    out = fit_run(tmp_path, config, "full-disk", extra=_plugin_config(tmp_path, "disk", "FullDiskAt", step=4), expect=2)
    ckpts = Path("runs", "full-disk", "csv", "checkpoints")
    ckpt_dir = tmp_path / ckpts
    warning = next(line for line in out.stderr.splitlines() if "warning" in line)
    assert re.fullmatch(
        rf"onellm fit: warning: checkpoints in {ckpts} \(3 x [\d.]+ MB \+ 2 x [\d.]+ [kM]B\) need about [\d.]+ MB "
        r"more, but 1\.0 MB is free there",
        warning,
    ), warning
    error = out.stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"onellm fit: error: could not write checkpoint epoch=0-step=4\.ckpt in {ckpts}: "
        r"No space left on device; it needs about ([\d.]+) MB and 1\.0 MB is free there; "
        rf"the last good checkpoint is {ckpts / 'last.ckpt'}.*",
        error,
    )
    assert match, error
    assert not list(ckpt_dir.glob(".*.tmp"))
    assert _step_of(ckpt_dir / "last.ckpt") == 2  # intact and loadable
    # The size it names is that of a checkpoint.
    assert abs(float(match[1]) * 1e6 / (ckpt_dir / "last.ckpt").stat().st_size - 1) < 0.05


def test_max_time_from_a_fresh_ckpt_path_last_ends_with_checkpoint_export_and_status_0(tmp_path):
    # `--ckpt_path last` with no checkpoint but a temporary file of one: a fresh start.
    data = write_world(tmp_path, per_modality=8)
    config = stage_config(tmp_path, data, steps=10_000, every=10_000, batch_size=4)
    export = tmp_path / "runs" / "timed" / "export"
    ckpt = Path("runs", "timed", "csv", "checkpoints", "last.ckpt")
    # What a kill -9 during a save leaves: never loaded, and removed.
    stale = tmp_path / ckpt.parent / ".last.ckpt.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    out = fit_run(
        tmp_path,
        config,
        "timed",
        extra=("--trainer.max_time", "00:00:00:08", "--model.export_dir", str(export), "--ckpt_path", "last"),
    )
    assert f"no checkpoint in {ckpt.parent} yet: starting fresh" in out.stderr
    assert not stale.exists()
    steps = len(losses(tmp_path / "runs" / "timed" / "csv"))
    assert 0 < steps < 10_000 and _step_of(tmp_path / ckpt) == steps
    assert out.stderr.strip().splitlines()[-1] == (
        f"onellm fit: stopped on time (trainer.max_time) after step {steps}; checkpoint {ckpt}; export {export}"
    )
    assert (export / "config.json").is_file() and (export / "onellm.safetensors").is_file()


def test_checkpoints_leave_out_a_frozen_tied_lm_head():
    # SmolLM2 ties its LM head to the embedding: a second state_dict key for one frozen
    # tensor, which made every stage-1 checkpoint 113 MB larger.
    module = OneLLMModule(model="tiny", modalities=["image"], trainable=["upm.*"])
    llm = module.model.llm
    llm.lm_head.weight = llm.model.embed_tokens.weight
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["state_dict"] and not [k for k in checkpoint["state_dict"] if k.startswith("model.llm.")]
    assert checkpoint_bytes(module, []) == tensor_bytes(checkpoint["state_dict"])
