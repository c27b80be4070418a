"""Hyperparameters: SageMaker's strings turned into GLMConfig overrides and entry-point options.

SageMaker hands every value over as a string (``sagemaker-contract.md`` §1.3); some producers
JSON-encode them (``"\\"poisson\\""``, ``"[\\"a\\", \\"b\\"]"``), the SDK's generic Estimator
writes ``str(value)`` (``"True"``, ``"['a', 'b']"``). Each value is tried as JSON, then as a
Python literal list or dict, and kept as the raw string when both fail; then it is converted to
the type of the GLMConfig field it sets (read from the field's annotation, so new fields work
without changes here).

Names accepted by ``train``:

* any GLMConfig field (``family``, ``link``, ``tweedie_power``, ``predictors`` as a JSON list or
  ``a,b,c``, ``fit_intercept``, ``max_iter``, ...) and dotted nested fields (``penalty.alpha``,
  ``test.fraction``, ``constraints.bounds`` as JSON);
* the short aliases in :data:`ALIASES` (``alpha``, ``l1_ratio``, ``test_fraction``, ...);
* ``config``: a whole GLMConfig as JSON (used when there is no ``config`` channel).

Keys starting with ``sagemaker_`` and ``_tuning_objective_metric`` are ignored (the SDK and
automatic model tuning add them); ``sagemaker_container_log_level`` sets the log level. Any
other key is an error with a did-you-mean.
"""

from __future__ import annotations

import ast
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from smglm.config import GLMConfig
from smglm.errors import ConfigError, Issue, did_you_mean

__all__ = ["ALIASES", "Hyperparameters", "config_fields", "parse_hyperparameters"]

#: Short names for nested GLMConfig fields.
ALIASES: dict[str, str] = {
    "alpha": "penalty.alpha",
    "l1_ratio": "penalty.l1_ratio",
    "test_fraction": "test.fraction",
    "test_seed": "test.seed",
    "bounds": "constraints.bounds",
}
_IGNORED_KEYS = frozenset({"_tuning_objective_metric"})
_IGNORED_PREFIX = "sagemaker_"
_LOG_LEVEL_KEY = "sagemaker_container_log_level"
_NULLS = frozenset({"", "null", "none"})


@dataclass(frozen=True)
class Hyperparameters:
    """Parsed hyperparameters.

    Attributes
    ----------
    overrides
        Dotted GLMConfig field -> typed value, for :meth:`GLMConfig.with_overrides`.
    options
        The entry point's own options (e.g. ``output_format``), as strings.
    config
        A whole GLMConfig mapping given as the ``config`` hyperparameter, or None.
    log_level
        ``sagemaker_container_log_level`` as an integer, or None.
    """

    overrides: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    log_level: int | None = None


def config_fields() -> dict[str, Any]:
    """Every GLMConfig field a hyperparameter can set: dotted name -> its annotation."""
    out: dict[str, Any] = {}
    for name, info in GLMConfig.model_fields.items():
        if name == "schema_version":
            continue
        out[name] = info.annotation
        nested = _model_in(info.annotation)
        if nested is not None:
            for sub, sub_info in nested.model_fields.items():
                out[f"{name}.{sub}"] = sub_info.annotation
    return out


def parse_hyperparameters(
    raw: Mapping[str, Any],
    *,
    options: Mapping[str, tuple[str, ...] | None] | None = None,
    config: bool = True,
) -> Hyperparameters:
    """Split and convert the hyperparameters of one entry point.

    Parameters
    ----------
    raw
        ``hyperparameters.json`` as read (values are normally strings).
    options
        The entry point's own option names, each with its allowed values (None: any string).
    config
        Whether GLMConfig fields may be set (``train``); otherwise only ``options`` are known.

    Returns
    -------
    Hyperparameters

    Raises
    ------
    ConfigError
        Naming every unknown hyperparameter and every value that does not convert.
    """
    options = dict(options or {})
    fields = config_fields() if config else {}
    known = sorted(
        [*fields, *(ALIASES if config else {}), *options, *(["config"] if config else [])]
    )
    issues: list[Issue] = []
    overrides: dict[str, Any] = {}
    opts: dict[str, str] = {}
    whole: dict[str, Any] | None = None
    log_level: int | None = None
    for key, value in raw.items():
        key = str(key)
        where = f"hyperparameters.{key}"
        if key == _LOG_LEVEL_KEY:
            log_level = _log_level(value)
            continue
        if key.startswith(_IGNORED_PREFIX) or key in _IGNORED_KEYS:
            continue
        name = key.replace("-", "_")
        if name in options:
            decoded = _decode(value)
            text = decoded if isinstance(decoded, str) else _as_text(value)
            allowed = options[name]
            if allowed is not None and text not in allowed:
                issues.append(
                    Issue(
                        where,
                        f"{text!r} is not allowed; choose one of {list(allowed)}."
                        f"{did_you_mean(text, allowed)}",
                        text,
                    )
                )
            else:
                opts[name] = text
            continue
        if config and name == "config":
            whole = _whole_config(value, where, issues)
            continue
        path = ALIASES.get(name, name) if config else name
        if path not in fields:
            issues.append(
                Issue(
                    where,
                    f"unknown hyperparameter {key!r}; allowed are {known}."
                    f"{did_you_mean(name, known)}",
                    key,
                )
            )
            continue
        try:
            overrides[path] = convert(value, fields[path])
        except ValueError as exc:
            label = where if path == name else f"{where} ({path})"
            issues.append(Issue(label, str(exc), value))
    if issues:
        raise ConfigError(issues)
    return Hyperparameters(overrides=overrides, options=opts, config=whole, log_level=log_level)


def convert(value: Any, annotation: Any) -> Any:
    """Convert one hyperparameter value to the type ``annotation`` describes.

    Raises ``ValueError`` with a message naming the value received and the type wanted.
    """
    kind, nullable = _kind(annotation)
    text = _as_text(value)
    decoded = _decode(value)
    if nullable and (decoded is None or text.strip().lower() in _NULLS):
        return None
    if kind == "str":
        return decoded if isinstance(decoded, str) else text
    if kind == "bool":
        if isinstance(decoded, bool):
            return decoded
        low = (decoded if isinstance(decoded, str) else text).strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"must be true or false; got {text!r}")
    if kind in ("int", "float"):
        return _number(kind, decoded, text)
    if kind == "list":
        if isinstance(decoded, list):
            return [str(v) for v in decoded]
        source = decoded if isinstance(decoded, str) else text
        return [part.strip() for part in source.split(",") if part.strip()]
    # a mapping or pair: JSON only
    if isinstance(decoded, (dict, list)):
        return decoded
    raise ValueError(f'must be JSON (e.g. {{"key": value}}); got {text!r}')


def _number(kind: str, decoded: Any, text: str) -> int | float:
    what = "an integer" if kind == "int" else "a number"
    candidate = decoded
    if isinstance(candidate, str):
        try:
            candidate = float(candidate.strip()) if kind == "float" else int(candidate.strip())
        except ValueError:
            raise ValueError(f"must be {what}; got {text!r}") from None
    if isinstance(candidate, bool) or not isinstance(candidate, (int, float)):
        raise ValueError(f"must be {what}; got {text!r}")
    if kind == "int":
        if isinstance(candidate, float) and not candidate.is_integer():
            raise ValueError(f"must be {what}; got {text!r}")
        return int(candidate)
    return float(candidate)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _decode(value: Any) -> Any:
    """JSON first; then a Python literal list or dict (the SDK's ``str()`` of one); else as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, ValueError):
        pass
    text = value.strip()
    if (text[:1], text[-1:]) in (("[", "]"), ("{", "}")):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return value


def _whole_config(value: Any, where: str, issues: list[Issue]) -> dict[str, Any] | None:
    decoded = _decode(value)
    if isinstance(decoded, dict):
        return decoded
    issues.append(Issue(where, f"must be a GLMConfig as a JSON object; got {_as_text(value)!r}"))
    return None


def _log_level(value: Any) -> int | None:
    decoded = _decode(value)
    if isinstance(decoded, int) and not isinstance(decoded, bool):
        return decoded
    import logging

    level = logging.getLevelName(str(decoded).upper())
    return level if isinstance(level, int) else None


def _kind(annotation: Any) -> tuple[str, bool]:
    """The conversion kind of an annotation (str, bool, int, float, list, json) and nullability."""
    nullable = False
    ann = annotation
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(ann) if a is not type(None)]
            nullable = nullable or len(args) < len(get_args(ann))
            ann = args[0] if len(args) == 1 else str
        else:
            break
    if origin is Literal:
        values = get_args(ann)
        return ("int" if all(isinstance(v, int) for v in values) else "str"), nullable
    if ann is bool:
        return "bool", nullable
    if ann in (int, float, str):
        return ann.__name__, nullable
    if ann is list or origin is list:
        return "list", nullable
    return "json", nullable


def _model_in(annotation: Any) -> type[BaseModel] | None:
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
        stack.extend(get_args(ann))
    return None
