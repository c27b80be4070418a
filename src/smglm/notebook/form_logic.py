"""The form's logic without widgets: form state <-> GLMConfig, checks, the ``%%sm_train`` text.

Nothing here imports ipywidgets, so all of it is testable (and usable) without a front end.
"""

from __future__ import annotations

import math
import shlex
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from smglm.config.families import DEFAULT_LINK, FAMILIES, FAMILY_LINKS
from smglm.errors import ConfigError, DataError, SmglmError

__all__ = [
    "OFFSET_KINDS",
    "FormState",
    "cell_text",
    "check",
    "column_choices",
    "config_dict",
    "filter_options",
    "instance_choices",
    "links_for",
    "state_from_config",
]

#: How the offset is given: none, an offset column, or an exposure column.
OFFSET_KINDS = ("none", "offset", "exposure")
_NONE = ""
#: The GLMConfig fields the form edits; the others are kept as they are (``FormState.extra``).
_FORM_FIELDS = frozenset(
    {
        "schema_version", "target", "predictors", "weights", "offset", "exposure", "family",
        "link", "tweedie_power", "penalty", "constraints", "test",
    }
)  # fmt: skip


@dataclass(frozen=True)
class FormState:
    """Everything the form holds, as plain values (``""`` for "no column")."""

    data_ref: str = ""
    target: str = _NONE
    predictors: tuple[str, ...] = ()
    weights: str = _NONE
    offset_kind: str = "none"
    offset_column: str = _NONE
    family: str = "gaussian"
    link: str = _NONE
    tweedie_power: float = 1.5
    alpha: float = 0.0
    l1_ratio: float = 0.0
    bounds: tuple[tuple[str, float | None, float | None], ...] = ()
    test_fraction: float = 0.0
    test_seed: int = 0
    backend: str = "local"
    instance_type: str = "ml.m5.xlarge"
    job_name: str = _NONE
    extra: dict[str, Any] = field(default_factory=dict)

    def with_family(self, family: str) -> FormState:
        """The state with ``family`` and that family's default (canonical or usual) link."""
        return replace(self, family=family, link=DEFAULT_LINK[family])


def links_for(family: str) -> tuple[list[str], str]:
    """The links valid for ``family`` and the one to pre-select (canonical or conventional)."""
    return list(FAMILY_LINKS[family]), DEFAULT_LINK[family]


def config_dict(state: FormState) -> dict[str, Any]:
    """The GLMConfig dict of the form: only the fields that differ from the defaults."""
    out: dict[str, Any] = {"target": state.target or None}
    out["predictors"] = list(state.predictors)
    if state.weights:
        out["weights"] = state.weights
    if state.offset_kind in ("offset", "exposure") and state.offset_column:
        out[state.offset_kind] = state.offset_column
    out["family"] = state.family
    if state.link and state.link != DEFAULT_LINK.get(state.family):
        out["link"] = state.link
    if state.family == "tweedie":
        out["tweedie_power"] = float(state.tweedie_power)
    if state.alpha or state.l1_ratio:
        out["penalty"] = {"alpha": float(state.alpha), "l1_ratio": float(state.l1_ratio)}
    bounds = {
        term: [_number(lo), _number(hi)]
        for term, lo, hi in state.bounds
        if term in state.predictors and (_number(lo) is not None or _number(hi) is not None)
    }
    if bounds:
        out["constraints"] = {"bounds": bounds}
    if state.test_fraction:
        out["test"] = {"fraction": float(state.test_fraction), "seed": int(state.test_seed)}
    out.update(state.extra)
    return out


def _number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def state_from_config(config: Any, **job: Any) -> FormState:
    """The form state showing ``config`` (a GLMConfig or dict); ``job`` sets the job fields."""
    from smglm.config import GLMConfig

    cfg = config if isinstance(config, GLMConfig) else GLMConfig.from_dict(config)
    kind, column = "none", _NONE
    if cfg.exposure:
        kind, column = "exposure", cfg.exposure
    elif cfg.offset:
        kind, column = "offset", cfg.offset
    data = cfg.to_dict()
    extra = {k: data[k] for k in data if k not in _FORM_FIELDS and _non_default(cfg, k)}
    return FormState(
        target=cfg.target,
        predictors=tuple(cfg.predictors),
        weights=cfg.weights or _NONE,
        offset_kind=kind,
        offset_column=column,
        family=cfg.family,
        link=cfg.resolved_link,
        tweedie_power=cfg.resolved_power or 1.5,
        alpha=cfg.penalty.alpha,
        l1_ratio=cfg.penalty.l1_ratio,
        bounds=tuple((t, lo, hi) for t, (lo, hi) in cfg.constraints.bounds.items()),
        test_fraction=cfg.test.fraction if cfg.test else 0.0,
        test_seed=cfg.test.seed if cfg.test else 0,
        extra=extra,
        **job,
    )


def _non_default(cfg: Any, name: str) -> bool:
    info = type(cfg).model_fields[name]
    return bool(getattr(cfg, name) != info.get_default(call_default_factory=True))


def column_choices(frame: Any) -> dict[str, list[str]]:
    """Columns per role: ``all``, ``numeric`` (target, weights, offset) of a DataFrame."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    numeric = [
        str(c)
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    return {"all": columns, "numeric": numeric}


def filter_options(options: list[str], query: str) -> list[str]:
    """The options containing every word of ``query`` (case-insensitive), in their order."""
    words = query.lower().split()
    return [o for o in options if all(w in o.lower() for w in words)]


def instance_choices(current: str | None = None) -> list[tuple[str, str]]:
    """``(label, instance type)`` pairs of the CPU instance types with a known price.

    Labels read ``ml.m5.xlarge (4 vCPU, 16 GiB, ~$0.23/h)``; ``current`` is kept even when the
    price table does not list it.
    """
    from smglm.launch.pricing import instance_info, known_instance_types

    out = []
    for name in known_instance_types():
        info = instance_info(name)
        if info is not None and not info.gpus:
            out.append((info.describe(), name))
    if current and current not in {v for _, v in out}:
        info = instance_info(current)
        out.insert(0, (info.describe() if info else f"{current} (no price known)", current))
    return out


def check(state: FormState, frame: Any | None) -> list[str]:
    """The problems of the form, one message each: config problems, then data problems.

    ``frame`` (a DataFrame, or None when no data is loaded) is checked with
    :func:`smglm.glm.data.prepare`, exactly as the launch will check it.
    """
    if state.family not in FAMILIES:
        return [f"family: {state.family!r} is not a family; choose one of {list(FAMILIES)}"]
    from smglm.config import GLMConfig

    problems = []
    if not state.target:
        problems.append("target: choose the target column")
    if not state.data_ref:
        problems.append("data: choose a DataFrame or enter a path")
    if state.offset_kind != "none" and not state.offset_column:
        problems.append(f"{state.offset_kind}: choose the {state.offset_kind} column")
    if not state.target:
        return problems
    try:
        config = GLMConfig.from_dict(config_dict(state))
    except ConfigError as exc:
        return problems + [str(i) if i.field else i.message for i in exc.issues]
    if frame is None:
        return problems
    from smglm.glm.data import prepare

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepare(config.resolved(), frame)
    except DataError as exc:
        problems += [str(i) if i.field else i.message for i in exc.issues]
    except SmglmError as exc:
        problems.append(str(exc))
    return problems


def cell_text(state: FormState) -> str:
    """The ``%%sm_train`` cell equivalent to the form (options line, then the YAML body)."""
    import yaml

    options = ["%%sm_train", "--data", _quote(state.data_ref)]
    if state.backend:
        options += ["--backend", state.backend]
    if state.instance_type:
        options += ["--instance-type", state.instance_type]
    if state.job_name:
        options += ["--name", state.job_name]
    body = yaml.safe_dump(config_dict(state), sort_keys=False, default_flow_style=None)
    return " ".join(options) + "\n" + body


def _quote(text: str) -> str:
    return shlex.quote(text) if text else "''"
