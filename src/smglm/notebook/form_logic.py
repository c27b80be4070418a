"""The form's logic without widgets: form state <-> GLMConfig, checks, the ``%%sm_train`` text.

Nothing here imports ipywidgets, so all of it is testable (and usable) without a front end.
"""

from __future__ import annotations

import itertools
import math
import shlex
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from smglm.config.families import DEFAULT_LINK, FAMILIES, FAMILY_LINKS
from smglm.errors import ConfigError, DataError, SmglmError

__all__ = [
    "FOLD_KINDS",
    "OFFSET_KINDS",
    "TERM_KINDS",
    "FormState",
    "TermOptions",
    "cell_text",
    "check",
    "column_choices",
    "config_dict",
    "filter_options",
    "fixed_text",
    "groups_text",
    "instance_choices",
    "level_choices",
    "links_for",
    "numbers_text",
    "parse_fixed",
    "parse_groups",
    "parse_numbers",
    "state_from_config",
]

#: How the offset is given: none, an offset column, or an exposure column.
OFFSET_KINDS = ("none", "offset", "exposure")
#: How a predictor enters: as it is (numeric: linear; text: a level each), a spline, bands.
TERM_KINDS = ("as is", "spline", "bands")
#: How a penalty search makes its folds: random, grouped by a column, forward by a column.
FOLD_KINDS = ("random", "group", "by")
_NONE = ""
#: The GLMConfig fields the form edits; the others are kept as they are (``FormState.extra``).
_FORM_FIELDS = frozenset(
    {
        "schema_version", "target", "predictors", "weights", "offset", "exposure", "family",
        "link", "tweedie_power", "penalty", "constraints", "test", "terms", "interactions",
        "fixed",
    }
)  # fmt: skip
#: The penalty search's options the form edits; the others are kept (``search_rest``).
_SEARCH_FIELDS = frozenset({"l1_ratio", "n_alphas", "cv"})


@dataclass(frozen=True)
class TermOptions:
    """How one predictor enters the model, as the form's boxes hold it (text where the user
    types lists): the inverse of a :class:`~smglm.config.TermSpec` plus its ``fixed`` entry.

    ``kind`` is one of :data:`TERM_KINDS`. A spline takes ``df`` (0: use ``knots``, the
    interior knots as text ``25, 35, 50``) and ``monotone`` (``""``, ``increasing`` or
    ``decreasing``); ``boundary`` is kept from a config (the form does not edit it). Bands
    take ``bands``, the cut points as text (``60, 80, 100``). Levels (a categorical's, or
    bands') take ``groups`` as text (``north: R01, R02; south: R04``), ``base`` (the
    reference level) and ``missing_level`` (missing values as a level). ``fixed`` is a
    coefficient (``0.09``) or relativities (``A: 1.2, B: 1.35``), as text.
    """

    kind: str = "as is"
    df: int = 0
    knots: str = ""
    monotone: str = ""
    boundary: tuple[float, float] | None = None
    bands: str = ""
    groups: str = ""
    base: str = ""
    missing_level: bool = False
    fixed: str = ""

    @property
    def is_default(self) -> bool:
        """Whether the predictor enters as it is, with nothing fixed."""
        return self == TermOptions()

    def spec(self, column: str) -> tuple[dict[str, Any], list[str]]:
        """The ``terms`` entry (without empty parts) and the problems of the text boxes."""
        problems: list[str] = []
        out: dict[str, Any] = {}
        where = f"terms.{column}"
        if self.kind == "spline":
            spline: dict[str, Any] = {}
            if self.df:
                spline["df"] = int(self.df)
            elif self.knots.strip():
                knots, bad = parse_numbers(self.knots, f"{where}.spline.knots")
                problems += bad
                spline["knots"] = knots
            if self.monotone:
                spline["monotone"] = self.monotone
            if self.boundary is not None:
                spline["boundary"] = list(self.boundary)
            out["spline"] = spline
            return out, problems
        if self.kind == "bands":
            cuts, bad = parse_numbers(self.bands, f"{where}.bands")
            problems += bad
            out["bands"] = cuts
        if self.groups.strip():
            groups, bad = parse_groups(self.groups, f"{where}.groups")
            problems += bad
            if groups:
                out["groups"] = groups
        if self.base.strip():
            out["base"] = self.base.strip()
        if self.missing_level:
            out["missing"] = "level"
        return out, problems

    def fixed_value(self, column: str) -> tuple[float | dict[str, float] | None, list[str]]:
        """The ``fixed`` entry (None when empty) and the problems of its text."""
        if not self.fixed.strip():
            return None, []
        return parse_fixed(self.fixed, f"fixed.{column}")

    @classmethod
    def from_config(cls, spec: Any, fixed: Any = None) -> TermOptions:
        """The options showing ``spec`` (a TermSpec or None) and ``fixed`` (or None)."""
        fixed_text_ = _NONE if fixed is None else fixed_text(fixed)
        if spec is None:
            return cls(fixed=fixed_text_)
        groups = groups_text(spec.groups) if spec.groups else _NONE
        common = {
            "groups": groups,
            "base": spec.base or _NONE,
            "missing_level": spec.missing == "level",
            "fixed": fixed_text_,
        }
        if spec.spline is not None:
            s = spec.spline
            return cls(
                kind="spline",
                df=s.df or 0,
                knots=numbers_text(s.knots) if s.knots is not None else _NONE,
                monotone=s.monotone or _NONE,
                boundary=tuple(s.boundary) if s.boundary is not None else None,
                fixed=fixed_text_,
            )
        if spec.bands is not None:
            return cls(kind="bands", bands=numbers_text(spec.bands), **common)
        return cls(**common)


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
    terms: tuple[tuple[str, TermOptions], ...] = ()
    interactions: tuple[tuple[str, str], ...] = ()
    search: bool = False
    search_l1_ratio: str = "0"
    search_n_alphas: int = 20
    search_folds: int = 5
    search_fold_kind: str = "random"
    search_fold_column: str = _NONE
    search_rest: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.0
    test_seed: int = 0
    backend: str = "local"
    instance_type: str = "ml.m5.xlarge"
    engine: str = "glum"
    job_name: str = _NONE
    extra: dict[str, Any] = field(default_factory=dict)

    def with_family(self, family: str) -> FormState:
        """The state with ``family`` and that family's default (canonical or usual) link."""
        return replace(self, family=family, link=DEFAULT_LINK[family])

    def term(self, column: str) -> TermOptions:
        """The options of ``column`` (the defaults when not set)."""
        return dict(self.terms).get(column, TermOptions())

    def text_problems(self) -> list[str]:
        """What is wrong in the boxes where lists are typed (cut points, groups, fixed, l1
        ratios), one message each, naming the config field."""
        problems: list[str] = []
        for col, options in self.terms:
            if col in self.predictors:
                problems += options.spec(col)[1] + options.fixed_value(col)[1]
        if self.search:
            problems += parse_numbers(self.search_l1_ratio, "penalty.search.l1_ratio")[1]
        return problems


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
    if state.search:
        out["penalty"] = {"search": _search_dict(state)}
    elif state.alpha or state.l1_ratio:
        out["penalty"] = {"alpha": float(state.alpha), "l1_ratio": float(state.l1_ratio)}
    terms: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    for col, options in state.terms:
        if col not in state.predictors:
            continue
        spec = options.spec(col)[0]
        if spec:
            terms[col] = spec
        value = options.fixed_value(col)[0]
        if value is not None:
            fixed[col] = value
    if terms:
        out["terms"] = terms
    chosen = set(state.predictors)
    pairs = [[a, b] for a, b in state.interactions if a in chosen and b in chosen]
    if pairs:
        out["interactions"] = pairs
    if fixed:
        out["fixed"] = fixed
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


def _search_dict(state: FormState) -> dict[str, Any]:
    ratios = parse_numbers(state.search_l1_ratio, "penalty.search.l1_ratio")[0]
    cv: dict[str, Any] = {"folds": int(state.search_folds)}
    if state.search_fold_kind in ("group", "by") and state.search_fold_column:
        cv[state.search_fold_kind] = state.search_fold_column
    rest = dict(state.search_rest)
    extra_cv = rest.pop("cv", None) or {}
    return {
        "l1_ratio": ratios,
        "n_alphas": int(state.search_n_alphas),
        **rest,
        "cv": {**extra_cv, **cv},
    }


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
    if cfg.test is not None and cfg.test.by is not None:  # a split by column: kept as it is
        extra["test"] = {"by": cfg.test.by, "holdout": data["test"]["holdout"]}
    columns = list(dict.fromkeys([*cfg.terms, *cfg.fixed]))
    terms = tuple((c, TermOptions.from_config(cfg.terms.get(c), cfg.fixed.get(c))) for c in columns)
    search = cfg.penalty.search
    search_fields: dict[str, Any] = {}
    if search is not None:
        given = data["penalty"]["search"]
        cv = given["cv"]
        fold_kind = "group" if cv["group"] else "by" if cv["by"] else "random"
        cv_rest = {
            k: v
            for k, v in cv.items()
            if k not in ("folds", "group", "by") and k in search.cv.model_fields_set
        }
        rest = {
            k: v for k, v in given.items() if k not in _SEARCH_FIELDS and _non_default(search, k)
        }
        search_fields = {
            "search": True,
            "search_l1_ratio": numbers_text(search.l1_ratio),
            "search_n_alphas": search.n_alphas,
            "search_folds": search.cv.folds,
            "search_fold_kind": fold_kind,
            "search_fold_column": cv["group"] or cv["by"] or _NONE,
            "search_rest": {**rest, "cv": cv_rest},
        }
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
        terms=terms,
        interactions=tuple((a, b) for a, b in cfg.interactions),
        test_fraction=cfg.test.fraction if cfg.test and cfg.test.by is None else 0.0,
        test_seed=cfg.test.seed if cfg.test and cfg.test.by is None else 0,
        extra=extra,
        **search_fields,
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

    problems = state.text_problems()
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
    from smglm.glm.engines import check_engine  # what the chosen engine cannot fit

    problems += [str(i) for i in check_engine(config.resolved(), state.engine)]
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


def level_choices(frame: Any, column: str, options: TermOptions, limit: int = 200) -> list[str]:
    """The levels a base may be for ``column``: its bands' labels (for bands), else its
    distinct values as level strings (up to ``limit``), then the groups' names."""
    from smglm.config.terms import MISSING_LEVEL, band_labels

    levels: list[str] = []
    if options.kind == "bands":
        cuts, bad = parse_numbers(options.bands, "bands")
        if cuts and not bad and all(b > a for a, b in itertools.pairwise(cuts)):
            levels = band_labels(cuts)
    elif options.kind == "as is" and frame is not None and column in frame.columns:
        from smglm.glm.terms import level_strings

        values = frame[column].drop_duplicates().head(limit + 1)
        if len(values) <= limit:
            levels = sorted({v for v in level_strings(values) if v is not None})
    groups, _ = parse_groups(options.groups, "groups") if options.groups.strip() else ({}, [])
    grouped = {m for members in groups.values() for m in members}
    out = [lv for lv in levels if lv not in grouped] + list(groups)
    if options.missing_level:
        out.append(MISSING_LEVEL)
    return out


# -- text boxes <-> values -------------------------------------------------------------------
def _split(text: str, seps: str) -> list[str]:
    """``text`` split at any of ``seps`` outside brackets (a band's label ``[60,80)`` stays
    whole), each part stripped, empty parts dropped."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        if ch in seps and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def numbers_text(values: Any) -> str:
    """Numbers as a box shows them: ``60, 80.5, 100`` (exact: reading it back gives them)."""
    return ", ".join(_number_text(float(v)) for v in values)


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def parse_numbers(text: str, field: str) -> tuple[list[float], list[str]]:
    """``60, 80, 100`` (commas or spaces) as numbers, and the problems (naming ``field``)."""
    numbers: list[float] = []
    bad: list[str] = []
    for part in _split(text.replace(";", ","), ", \t"):
        try:
            number = float(part)
        except ValueError:
            bad.append(part)
            continue
        numbers.append(int(number) if number.is_integer() and abs(number) < 1e15 else number)
    if bad:
        return numbers, [
            f"{field}: {bad} {'is' if len(bad) == 1 else 'are'} not a number in {text.strip()!r}; "
            "write numbers separated by commas, e.g. 60, 80, 100"
        ]
    return numbers, []


def groups_text(groups: dict[str, list[str]]) -> str:
    """Groups as a box shows them: ``north: R01, R02; south: R04``."""
    return "; ".join(f"{name}: {', '.join(members)}" for name, members in groups.items())


def parse_groups(text: str, field: str) -> tuple[dict[str, list[str]], list[str]]:
    """``north: R01, R02; south: R04`` as groups, and the problems (naming ``field``)."""
    groups: dict[str, list[str]] = {}
    problems = []
    for part in _split(text, ";\n"):
        name, colon, members = part.partition(":")
        if not colon or not name.strip():
            problems.append(
                f"{field}: {part!r} is not 'group: level, level'; write e.g. "
                "north: R01, R02; south: R04"
            )
            continue
        if name.strip() in groups:
            problems.append(f"{field}: group {name.strip()!r} is given twice in {text.strip()!r}")
            continue
        groups[name.strip()] = _split(members, ",")
    return groups, problems


def fixed_text(value: float | dict[str, float]) -> str:
    """A fixed term as its box shows it: ``0.09`` or ``A: 1.2, B: 1.35``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_number_text(float(v))}" for k, v in value.items())
    return _number_text(float(value))


def parse_fixed(text: str, field: str) -> tuple[float | dict[str, float] | None, list[str]]:
    """``0.09`` (a coefficient) or ``A: 1.2, B: 1.35`` (relativities; ``A=1.2`` too), and the
    problems (naming ``field``)."""
    text = text.strip()
    try:
        return float(text), []
    except ValueError:
        pass
    out: dict[str, float] = {}
    for part in _split(text, ",;\n"):
        level, sep, number = part.replace("=", ":", 1).rpartition(":")
        if sep:
            try:
                out[level.strip()] = float(number)
                continue
            except ValueError:
                pass
        return None, [
            f"{field}: {part!r} in {text!r} is not 'level: relativity'; write a coefficient "
            "(0.09) or relativities (A: 1.2, B: 1.35)"
        ]
    return out, []


def cell_text(state: FormState) -> str:
    """The ``%%sm_train`` cell equivalent to the form (options line, then the YAML body)."""
    import yaml

    options = ["%%sm_train", "--data", _quote(state.data_ref)]
    if state.backend:
        options += ["--backend", state.backend]
    if state.instance_type:
        options += ["--instance-type", state.instance_type]
    if state.engine and state.engine != "glum":
        options += ["--engine", state.engine]
    if state.job_name:
        options += ["--name", state.job_name]
    body = yaml.safe_dump(config_dict(state), sort_keys=False, default_flow_style=None)
    return " ".join(options) + "\n" + body


def _quote(text: str) -> str:
    return shlex.quote(text) if text else "''"
