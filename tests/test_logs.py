"""ResumableCSVLogger builds on Lightning's CSV writer internals (pyproject pins lightning<3):
these tests fail when those internals change under it, before a resumed run loses its log."""

import csv

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from onellm.training.logs import ResumableCSVLogger


def test_the_writer_internals_it_overrides_are_still_there():
    # What _ContinuingWriter and ResumableCSVLogger.experiment override or read.
    assert callable(getattr(_ExperimentWriter, "_check_log_dir_exists", None))
    assert issubclass(ExperimentWriter, _ExperimentWriter)
    writer = ExperimentWriter.__new__(ExperimentWriter)
    _ExperimentWriter.__init__(writer, log_dir="unused")
    assert {"metrics", "metrics_keys", "metrics_file_path"} <= set(vars(writer))
    assert ResumableCSVLogger("unused")._experiment is None


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def _log(root, steps, resume_step=None):
    logger = ResumableCSVLogger(root, name="run", version="v")
    if resume_step is not None:
        logger.resume_from(resume_step)
    for step in steps:
        logger.log_metrics({"train/loss": float(step)}, step=step)
    logger.save()
    return logger.experiment.metrics_file_path


def test_a_resumed_run_keeps_the_rows_before_its_step_and_a_fresh_run_starts_over(tmp_path):
    path = _log(tmp_path, range(5))
    assert [r["step"] for r in _rows(path)] == ["0", "1", "2", "3", "4"]
    _log(tmp_path, [3, 4, 5], resume_step=3)  # killed after step 4's row, resumed from step 3's checkpoint
    assert [(r["step"], r["train/loss"]) for r in _rows(path)] == [
        ("0", "0.0"),
        ("1", "1.0"),
        ("2", "2.0"),
        ("3", "3.0"),
        ("4", "4.0"),
        ("5", "5.0"),
    ]
    _log(tmp_path, [0])
    assert [r["step"] for r in _rows(path)] == ["0"]
