"""The ``evaluate`` entry point: score a trained model on a data channel; metrics, report and plots.

Channels: ``model`` (a model directory holding ``model.json``, or the training job's
``model.tar.gz``, unpacked safely) and one data channel: ``test``, else ``train``, else ``data``.
Writes into ``output/data/``:

* ``metrics.json``: ``{"<channel>": {n_obs, deviance, null_deviance, ..., gini}}``, the metrics of
  training's ``metrics.json`` with R's conventions; the null deviance is that of the intercept-only
  model refitted on this data (R's ``null.deviance``), so ``explained_deviance`` is relative to
  the best constant for this data;
* ``<channel>/``: the report tables and PNG plots, as ``train`` writes them;

and prints the metric lines ``<channel>:<name>=<value>;`` (:mod:`smglm.runtime.metrics`).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from smglm.runtime.channels import find_channel, model_dir_from_channel, read_data_channel
from smglm.runtime.failure import run_entry_point
from smglm.runtime.hyperparameters import parse_hyperparameters
from smglm.runtime.logging_config import set_level
from smglm.runtime.paths import MLPaths

__all__ = ["DATA_CHANNELS", "evaluate", "main"]

log = logging.getLogger(__name__)

#: The data channel evaluated: the first of these the job has.
DATA_CHANNELS = ("test", "train", "data")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``evaluate`` on the ``/opt/ml`` tree at ``$SMGLM_ML_ROOT``; return the exit code."""
    return run_entry_point("evaluate", evaluate, sys.argv[1:] if argv is None else argv)


def evaluate(paths: MLPaths) -> None:
    """Evaluate the model channel on the data channel (raises on failure)."""
    from smglm.glm import load_model
    from smglm.glm.report.scoring import score, split_metrics_of
    from smglm.glm.result import json_safe
    from smglm.runtime.metrics import print_metrics
    from smglm.runtime.report_files import plot_workers, write_report

    hp = parse_hyperparameters(paths.read_hyperparameters(), config=False)
    set_level(hp.log_level)
    channels = paths.read_input_data_config()
    find_channel(paths, channels, ["model"], required=True)
    name = find_channel(paths, channels, DATA_CHANNELS, required=True)
    assert name is not None
    with tempfile.TemporaryDirectory(prefix="smglm-model-") as tmp:
        result = load_model(model_dir_from_channel(paths, channels, Path(tmp)))
    config = result.config
    log.info(
        "model: %s/%s GLM of %r with %d coefficients",
        config.family,
        config.resolved_link,
        config.target,
        result.n_coefficients,
    )
    df = read_data_channel(paths, channels, name)
    scored = score(config, result.model, df, name)
    metrics = {name: split_metrics_of(config, scored, result.n_coefficients)}
    print_metrics(metrics)
    out = paths.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=1), encoding="utf-8")
    log.info("metrics written to %s", out / "metrics.json")
    write_report(config, scored, out / name, workers=plot_workers(), result=result)
