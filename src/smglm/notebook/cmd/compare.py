"""``%sm_compare``: training jobs side by side: metrics, coefficients, one-ways, double lift,
the nested-model test and each model's Gini with its bootstrap interval.

The one-ways, the double lift and the Gini intervals score every job's portable model on the
same rows: the first job's test data (its ``test`` channel, or its config's test split of
``train``), else its training data. Actual amounts and exposure are the first job's (its
target, weights, exposure). The nested-model test (:func:`smglm.glm.compare.nested_test`)
compares each pair of jobs whose terms nest, from their training deviances.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, Issue
from smglm.glm.report.render import RichView, esc, figure_png, html_table, img_tag, text_table

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.compare import GiniInterval, NestedTest
    from smglm.launch import Job

__all__ = ["Comparison", "compare", "comparison_data"]

METRICS = ("n_obs", "deviance", "explained_deviance", "aic", "bic", "gini")
#: Resamples of the Gini's bootstrap interval by default (``%sm_compare --bootstrap N``).
BOOTSTRAP = 200


class Comparison(RichView):
    """Jobs compared: ``metrics``, ``coefficients``, ``one_ways``, ``double_lift`` tables,
    ``figures`` (PNG bytes by name) and ``notes`` (what could not be compared, and why);
    ``nested``: per pair of jobs (in the order given), the nested-model test
    (:class:`~smglm.glm.compare.NestedTest`) or the reason it does not apply (a str);
    ``ginis``: each job's Gini on the compared rows with its bootstrap interval
    (:class:`~smglm.glm.compare.GiniInterval`; ``bootstrap`` resamples, 0: none)."""

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
        self.nested: dict[tuple[str, str], NestedTest | str] = {}
        self.ginis: dict[str, GiniInterval] = {}
        self.bootstrap = BOOTSTRAP

    @property
    def gini_table(self) -> pd.DataFrame | None:
        """Each job's Gini on the compared rows and its interval's ends (None: not scored)."""
        import pandas as pd

        if not self.ginis:
            return None
        return pd.DataFrame(
            {
                "gini": [g.gini for g in self.ginis.values()],
                "low": [g.low for g in self.ginis.values()],
                "high": [g.high for g in self.ginis.values()],
            },
            index=pd.Index(list(self.ginis), name="job"),
        )

    @property
    def gini_difference(self) -> GiniInterval | None:
        """The first job's Gini minus the second's, with the interval of the paired
        differences: both models are scored on the same resamples (the same seed draws the
        same rows), so the interval is that of the difference itself, narrower than the two
        intervals suggest. None without two bootstrapped Ginis."""
        import numpy as np

        from smglm.glm.compare import GiniInterval

        if len(self.ginis) < 2 or self.bootstrap <= 0:
            return None
        a, b = list(self.ginis.values())[:2]
        if len(a.replicates) != len(b.replicates):
            return None
        diff = a.replicates - b.replicates
        finite = diff[np.isfinite(diff)]
        if finite.size == 0:
            return None
        low, high = np.quantile(finite, [(1 - a.level) / 2, (1 + a.level) / 2])
        return GiniInterval(a.gini - b.gini, float(low), float(high), a.n, a.level, diff)

    def gini_difference_line(self) -> str:
        """The paired difference of the first two Ginis in one line ("" when not known)."""
        d = self.gini_difference
        if d is None:
            return ""
        a, b = list(self.ginis)[:2]
        holds = (
            "the interval holds 0: the two rankings are not told apart on these rows"
            if d.low <= 0 <= d.high
            else f"{a if d.gini > 0 else b} ranks better"
        )
        return (
            f"Gini {a} - {b}: {d.gini:+.4f} [{d.low:+.4f}, {d.high:+.4f}] "
            f"(paired bootstrap, {d.level:.0%}): {holds}"
        )

    def _gini_title(self) -> str:
        if self.bootstrap > 0:
            level = next(iter(self.ginis.values())).level if self.ginis else 0.95
            return (
                f"Gini on {self.data_label}, {level:.0%} bootstrap interval "
                f"({self.bootstrap} resamples of the rows)"
            )
        return f"Gini on {self.data_label}"

    def nested_lines(self) -> list[str]:
        """The nested-model test of each pair, one line each (or why it does not apply)."""
        return [
            value.to_text() if not isinstance(value, str) else f"{b} vs {a}: {value}"
            for (a, b), value in self.nested.items()
        ]

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
        gini = self.gini_table
        if gini is not None:
            if self.bootstrap <= 0:
                gini = gini[["gini"]]
            rows = [[i, *r] for i, r in zip(gini.index, gini.itertuples(index=False), strict=True)]
            out.append((self._gini_title(), ["job", *map(str, gini.columns)], rows))
        return out

    def to_html(self) -> str:
        parts = [f"<h3>Comparison of {esc(', '.join(self.names))}</h3>"]
        if self.nested:
            parts.append("<h4>Nested-model test</h4>")
            parts += [
                f"<p class='smglm-nested'>{esc(line)}</p>"
                if not isinstance(v, str)
                else f"<p class='smglm-nested'><i>{esc(line)}</i></p>"
                for line, v in zip(self.nested_lines(), self.nested.values(), strict=True)
            ]
        for title, headers, rows in self._tables():
            parts.append(f"<h4>{esc(title)}</h4>" + html_table(headers, rows))
        if self.gini_difference_line():
            parts.append(f"<p class='smglm-gini-difference'>{esc(self.gini_difference_line())}</p>")
        if self.figures:
            parts.append(f"<h4>One-ways and double lift on {esc(self.data_label)}</h4>")
            parts.append("<div style='display:flex;flex-wrap:wrap'>")
            parts += [img_tag(png, name) for name, png in self.figures.items()]
            parts.append("</div>")
        parts += [f"<p><i>{esc(n)}</i></p>" for n in self.notes]
        return "".join(parts)

    def to_text(self) -> str:
        blocks = [f"Comparison of {', '.join(self.names)}"]
        if self.nested:
            blocks += ["", "-- Nested-model test --", *self.nested_lines()]
        for title, headers, rows in self._tables():
            blocks += ["", f"-- {title} --", text_table(headers, rows)]
        if self.gini_difference_line():
            blocks.append(self.gini_difference_line())
        if self.figures:
            blocks += ["", "figures: " + ", ".join(self.figures)]
        blocks += self.notes
        return "\n".join(blocks)


def compare(jobs: list[Job], *, bootstrap: int = BOOTSTRAP, seed: int = 0) -> Comparison:
    """Compare completed jobs (at least two); see the module docstring for the data used.

    ``bootstrap``: resamples of each Gini's interval (0: the Gini alone); ``seed``: their
    random generator's seed (the same seed gives the same intervals)."""
    import pandas as pd

    from smglm.glm.compare import nested_reason, nested_test
    from smglm.glm.report.tables import coefficient_frame

    if len(jobs) < 2:
        raise ConfigError([Issue("jobs", f"compare needs two jobs or more; got {len(jobs)}")])
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ConfigError(
            [
                Issue(
                    "bootstrap",
                    f"the number of resamples must be an integer >= 0; got {bootstrap!r}",
                    bootstrap,
                )
            ]
        )
    not_done = [f"{j.name} ({j.status})" for j in jobs if j.status != "Completed"]
    if not_done:
        raise ConfigError([Issue("jobs", f"only completed jobs can be compared: {not_done}")])
    names = [j.name for j in jobs]
    out = Comparison(names)
    out.bootstrap = bootstrap
    results = [j.model for j in jobs]
    for i in range(len(jobs)):
        for k in range(i + 1, len(jobs)):
            pair = (names[i], names[k])
            test = nested_test(results[i], results[k], names=pair)
            if test is None:
                out.nested[pair] = str(nested_reason(results[i], results[k], names=pair))
            else:
                out.nested[pair] = test
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
    _scored_views(jobs, results, out, seed=seed)
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


def _scored_views(jobs: list[Job], results: list[Any], out: Comparison, *, seed: int = 0) -> None:
    import numpy as np

    from smglm.glm.compare import bootstrap_gini
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
    for name, p in predicted.items():
        out.ginis[name] = bootstrap_gini(actual, p, exposure, n=out.bootstrap, seed=seed)
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
