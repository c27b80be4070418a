"""``%sm_compare``: training jobs side by side: metrics, coefficients, one-ways, double lift.

The one-ways and the double lift score every job's portable model on the same rows: the first
job's test data (its ``test`` channel, or its config's test split of ``train``), else its
training data. Actual amounts and exposure are the first job's (its target, weights, exposure).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, Issue
from smglm.glm.report.render import RichView, esc, figure_png, html_table, img_tag, text_table

if TYPE_CHECKING:
    import pandas as pd

    from smglm.launch import Job

__all__ = ["Comparison", "compare", "comparison_data"]

METRICS = ("n_obs", "deviance", "explained_deviance", "aic", "bic", "gini")


class Comparison(RichView):
    """Jobs compared: ``metrics``, ``coefficients``, ``one_ways``, ``double_lift`` tables,
    ``figures`` (PNG bytes by name) and ``notes`` (what could not be compared, and why)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.metrics: pd.DataFrame | None = None
        self.coefficients: pd.DataFrame | None = None
        self.coefficient_kind = "estimate"
        self.data_label = ""
        self.one_ways: dict[str, pd.DataFrame] = {}
        self.double_lift: pd.DataFrame | None = None
        self.figures: dict[str, bytes] = {}
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"Comparison({self.names!r})"

    def _tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        out = []
        for title, frame in (
            ("Metrics", self.metrics),
            (f"Coefficients ({self.coefficient_kind})", self.coefficients),
            (f"Double lift on {self.data_label}", self.double_lift),
        ):
            if frame is not None:
                index = frame.index.name or ""
                rows = [
                    [i, *r] for i, r in zip(frame.index, frame.itertuples(index=False), strict=True)
                ]
                out.append((title, [str(index), *map(str, frame.columns)], rows))
        return out

    def to_html(self) -> str:
        parts = [f"<h3>Comparison of {esc(', '.join(self.names))}</h3>"]
        for title, headers, rows in self._tables():
            parts.append(f"<h4>{esc(title)}</h4>" + html_table(headers, rows))
        if self.figures:
            parts.append(f"<h4>One-ways and double lift on {esc(self.data_label)}</h4>")
            parts.append("<div style='display:flex;flex-wrap:wrap'>")
            parts += [img_tag(png, name) for name, png in self.figures.items()]
            parts.append("</div>")
        parts += [f"<p><i>{esc(n)}</i></p>" for n in self.notes]
        return "".join(parts)

    def to_text(self) -> str:
        blocks = [f"Comparison of {', '.join(self.names)}"]
        for title, headers, rows in self._tables():
            blocks += ["", f"-- {title} --", text_table(headers, rows)]
        if self.figures:
            blocks += ["", "figures: " + ", ".join(self.figures)]
        blocks += self.notes
        return "\n".join(blocks)


def compare(jobs: list[Job]) -> Comparison:
    """Compare completed jobs (at least two); see the module docstring for the data used."""
    import pandas as pd

    from smglm.glm.report.tables import coefficient_frame

    if len(jobs) < 2:
        raise ConfigError([Issue("jobs", f"compare needs two jobs or more; got {len(jobs)}")])
    not_done = [f"{j.name} ({j.status})" for j in jobs if j.status != "Completed"]
    if not_done:
        raise ConfigError([Issue("jobs", f"only completed jobs can be compared: {not_done}")])
    names = [j.name for j in jobs]
    out = Comparison(names)
    results = [j.model for j in jobs]
    columns = {
        f"{name}:{split}": {m: r.metrics[split].get(m) for m in METRICS}
        for name, r in zip(names, results, strict=True)
        for split in ("train", "test")
        if r.metrics.get(split)
    }
    out.metrics = pd.DataFrame(columns).rename_axis("metric")
    frames = [coefficient_frame(r) for r in results]
    log_links = all("relativity" in f.columns for f in frames)
    out.coefficient_kind = "relativity" if log_links else "estimate"
    value = "relativity" if log_links else "estimate"
    terms = list(dict.fromkeys(t for f in frames for t in f["term"]))
    out.coefficients = pd.DataFrame(
        {n: f.set_index("term")[value].reindex(terms) for n, f in zip(names, frames, strict=True)}
    ).rename_axis("term")
    _scored_views(jobs, results, out)
    return out


def comparison_data(job: Job) -> tuple[pd.DataFrame, str]:
    """The rows to compare on: the job's test data, else its training data, and a label."""
    from smglm.glm.fitting import split_test
    from smglm.glm.io import read_table

    config = job.model.config
    test = _channel(job, "test")
    if test is not None:
        return read_table(test, what="test data"), f"the test data of {job.name}"
    train = _channel(job, "train")
    if train is None:
        raise ConfigError([Issue("data", f"job {job.name} has no train channel to read")])
    df = read_table(train, what="data")
    if config.test is not None:
        _, test_df = split_test(df, config.test)
        return test_df, f"the test split of {job.name}"
    return df, f"the training data of {job.name}"


def _channel(job: Job, name: str) -> Path | None:
    """Download the job's input channel ``name`` once (next to its artifacts); None if absent."""
    from smglm.launch.storage import open_storage

    state = job.describe()
    channels = state.get("InputDataConfig")
    if channels is None:
        channels = job.spec().to_request()["InputDataConfig"]
    for c in channels or []:
        if c["ChannelName"] == name:
            uri = c["DataSource"]["S3DataSource"]["S3Uri"]
            dest = Path(job.artifacts()) / "input" / name
            if not dest.exists():
                open_storage(uri).download_prefix(uri, dest)
            return dest
    return None


def _scored_views(jobs: list[Job], results: list[Any], out: Comparison) -> None:
    import numpy as np

    from smglm.glm.report.figures import plot_double_lift, plot_one_way_overlay
    from smglm.glm.report.one_way import one_way
    from smglm.glm.report.ranking import double_lift
    from smglm.glm.report.scoring import amounts, score

    first = results[0].config
    same = [i for i, r in enumerate(results) if r.config.target == first.target]
    if len(same) < len(results):
        other = [jobs[i].name for i in range(len(jobs)) if i not in same]
        out.notes.append(f"not scored together (their target is not {first.target!r}): {other}")
    if len(same) < 2:
        return
    df, out.data_label = comparison_data(jobs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scored = score(first, results[0].model, df, "comparison")
        prep = scored.prep
        actual, _, exposure = scored.amounts()
        predicted = {  # each model's amounts on the first job's rows, weights and exposure
            jobs[i].name: amounts(
                prep.y,
                np.asarray(results[i].model.predict(scored.data), dtype=float),
                prep.weights,
                prep.exposure,
            )[1]
            for i in same
        }
    rows = scored.data.loc[scored.keep].reset_index(drop=True)
    shared = [c for c in first.predictors if all(c in results[i].config.predictors for i in same)]
    for column in shared:
        tables = {n: one_way(rows, column, actual, p, exposure) for n, p in predicted.items()}
        out.one_ways[column] = _merge(tables)
        out.figures[f"one-way {column}"] = figure_png(
            plot_one_way_overlay(out.one_ways[column], column)
        )
    (a, pa), (b, pb) = list(predicted.items())[:2]
    out.double_lift = double_lift(actual, pa, pb, exposure).set_index("bin")
    out.figures[f"double lift {a} vs {b}"] = figure_png(
        plot_double_lift(out.double_lift.reset_index(), a, b)
    )


def _merge(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    first = next(iter(tables.values()))
    merged = first[["bin", "exposure", "actual_rate"]].copy()
    for name, t in tables.items():
        merged[f"predicted_rate {name}"] = t["predicted_rate"].to_numpy()
    return merged
