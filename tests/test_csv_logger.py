"""A config naming Lightning's CSVLogger gets the resumable one, whose log survives a resume."""

import yaml
from training_helpers import fit_run, stage_config, write_world


def test_lightnings_csv_logger_is_replaced_by_the_resumable_one(tmp_path):
    data = write_world(tmp_path, per_modality=8)
    config = stage_config(tmp_path, data, steps=2, every=2, batch_size=2)
    out = fit_run(
        tmp_path, config, "plain", extra=("--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--threads", "1")
    )
    assert "CSVLogger -> onellm.training.logs.ResumableCSVLogger" in out.stdout + out.stderr
    saved = yaml.safe_load((tmp_path / "runs" / "plain" / "csv" / "config.yaml").read_text())
    assert saved["trainer"]["logger"]["class_path"] == "onellm.training.logs.ResumableCSVLogger"
