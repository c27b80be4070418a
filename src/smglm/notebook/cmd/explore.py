"""``%sm_explore``: a pre-fit look at the data (:func:`smglm.glm.report.explore.explore`).

``%sm_explore df target=claim_count exposure=exposure predictors=driver_age,area bins=8``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, Issue, did_you_mean
from smglm.notebook.cmd.common import resolve_data, strip_quotes

if TYPE_CHECKING:
    from smglm.glm.report.explore import Exploration

__all__ = ["OPTIONS", "parse_options", "run"]

#: The ``key=value`` options of ``%sm_explore`` and what each takes.
OPTIONS = {
    "target": "the column whose rate is observed (required, unless config= gives it)",
    "config": "a GLMConfig or dict variable, or a config file: its target, exposure, weights "
    "and predictors",
    "exposure": "the exposure column",
    "weights": "the weights column",
    "predictors": "comma-separated columns (default: all others)",
    "bins": "quantile bins of a numeric column (integer, default 10)",
    "rare": "exposure share under which a level is rare (default 0.01)",
    "max_levels": "levels shown of a categorical before the rest are merged (default 50)",
}


def parse_options(assignments: Sequence[str]) -> dict[str, Any]:
    """``key=value`` words as :func:`explore`'s keyword arguments (numbers converted)."""
    options: dict[str, Any] = {}
    for word in assignments:
        key, sep, value = word.partition("=")
        key, value = key.strip().lstrip("-").replace("-", "_"), strip_quotes(value)
        if not sep or not key:
            msg = f"expected key=value (keys: {', '.join(OPTIONS)}); got {word!r}"
            raise ConfigError([Issue("sm_explore", msg, word)])
        if key not in OPTIONS:
            hint = did_you_mean(key, list(OPTIONS))
            msg = f"unknown option {key!r}; options are {', '.join(OPTIONS)}.{hint}"
            raise ConfigError([Issue(key, msg, key)])
        if key in options:
            raise ConfigError([Issue(key, f"{key} is given twice", value)])
        if key == "predictors":
            options[key] = [p.strip() for p in value.split(",") if p.strip()]
        elif key in ("bins", "max_levels"):
            try:
                options[key] = int(value)
            except ValueError:
                raise ConfigError(
                    [Issue(key, f"must be an integer; got {value!r}", value)]
                ) from None
        elif key == "rare":
            try:
                options[key] = float(value)
            except ValueError:
                msg = f"must be a number from 0 to 1; got {value!r}"
                raise ConfigError([Issue(key, msg, value)]) from None
        else:
            options[key] = value or None
    if not options.get("target") and not options.get("config"):
        msg = "give the target column, e.g. %sm_explore df target=claim_count exposure=exposure"
        raise ConfigError([Issue("target", msg)])
    return options


def run(data: str, assignments: Sequence[str], user_ns: dict[str, Any]) -> Exploration:
    """Explore the data ``data`` names (a DataFrame variable or a local path)."""
    from smglm.glm.io import read_table
    from smglm.glm.report.explore import explore

    if not data or "=" in data:
        raise ConfigError(
            [
                Issue(
                    "data",
                    "give the data first: a DataFrame's name or a path, e.g. %sm_explore df "
                    "target=claim_count exposure=exposure",
                    data,
                )
            ]
        )
    options = parse_options(assignments)
    ref = options.get("config")
    if ref is not None and ref.isidentifier() and ref in user_ns:
        options["config"] = user_ns[ref]  # a GLMConfig or dict variable; else a file path
    frame = resolve_data(data, user_ns, option="data")
    if isinstance(frame, str) and frame.startswith("s3://"):
        msg = f"%sm_explore reads local data; download {frame!r} or read it into a DataFrame"
        raise ConfigError([Issue("data", msg, frame)])
    if isinstance(frame, str):
        frame = read_table(frame.removeprefix("file://"), what="data")
    return explore(frame, **options)
