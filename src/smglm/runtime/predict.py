"""The ``predict`` entry point: batch-score a data channel with a trained model.

Channels: ``model`` (a model directory or ``model.tar.gz``) and one data channel: ``data``, else
``test``, else ``train``. Writes ``output/data/predictions.csv`` (or ``predictions.parquet``) with
the column ``prediction`` (the predicted mean; it includes the offset or exposure when that
column is in the data, else it is per unit exposure), preceded by the ``id_column`` when one is
named, one row per input row in input order. Levels not seen in training score as the reference
level and are counted in the log.

Hyperparameters: ``output_format`` (``csv`` or ``parquet``), ``id_column`` (a column of the data).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from smglm.errors import DataError, Issue, did_you_mean
from smglm.runtime.channels import find_channel, model_dir_from_channel, read_data_channel
from smglm.runtime.failure import run_entry_point
from smglm.runtime.hyperparameters import parse_hyperparameters
from smglm.runtime.logging_config import set_level
from smglm.runtime.paths import MLPaths

__all__ = ["DATA_CHANNELS", "OPTIONS", "main", "predict"]

log = logging.getLogger(__name__)

#: The data channel scored: the first of these the job has.
DATA_CHANNELS = ("data", "test", "train")
#: predict's hyperparameters and their allowed values (None: any column name).
OPTIONS: dict[str, tuple[str, ...] | None] = {
    "output_format": ("csv", "parquet"),
    "id_column": None,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``predict`` on the ``/opt/ml`` tree at ``$SMGLM_ML_ROOT``; return the exit code."""
    return run_entry_point("predict", predict, sys.argv[1:] if argv is None else argv)


def predict(paths: MLPaths) -> None:
    """Score the data channel with the model channel (raises on failure)."""
    import pandas as pd

    from smglm.glm import PortableModel
    from smglm.glm.links import linkinv

    hp = parse_hyperparameters(paths.read_hyperparameters(), options=OPTIONS, config=False)
    set_level(hp.log_level)
    fmt = hp.options.get("output_format", "csv")
    id_column = hp.options.get("id_column") or None
    channels = paths.read_input_data_config()
    find_channel(paths, channels, ["model"], required=True)
    name = find_channel(paths, channels, DATA_CHANNELS, required=True)
    assert name is not None
    with tempfile.TemporaryDirectory(prefix="smglm-model-") as tmp:
        model = PortableModel.load(model_dir_from_channel(paths, channels, Path(tmp)))
    log.info("model: %s/%s GLM of %r", model.family, model.link, model.target)
    df = read_data_channel(paths, channels, name)
    if id_column is not None and id_column not in df.columns:
        cols = [str(c) for c in df.columns]
        raise DataError(
            [
                Issue(
                    "id_column",
                    f"column {id_column!r} is not in the {name} channel's data."
                    f"{did_you_mean(id_column, cols) or f' Its columns are {cols[:12]}'}",
                    id_column,
                )
            ]
        )
    offset_col = model.offset or model.exposure
    if offset_col and offset_col in df.columns:
        log.info(
            "predictions include the %s column %r",
            "offset" if model.offset else "exposure",
            offset_col,
        )
    elif offset_col:
        log.info("column %r is absent: predictions are per unit exposure (offset 0)", offset_col)
    eta, unseen = model.linear_predictor(df)
    for column, count in unseen.items():
        log.warning(
            "%d of %d row(s) have levels of %r not seen in training; scored as the reference level",
            count,
            len(df),
            column,
        )
    out = pd.DataFrame({"prediction": linkinv(model.link, eta)})
    if id_column is not None:
        out.insert(0, id_column, df[id_column].to_numpy())
    folder = paths.output_data_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"predictions.{fmt}"
    if fmt == "parquet":
        out.to_parquet(target, index=False)
    else:
        out.to_csv(target, index=False, float_format="%.17g")
    log.info("%d predictions written to %s", len(out), target)
