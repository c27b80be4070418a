"""The portable model: ``model.json``, scored with numpy alone (no glum, no pickle).

Format (``format_version`` 1)::

    {"format": "smglm.glm", "format_version": 1, "smglm_version": "0.1.0",
     "family": "poisson", "link": "log", "tweedie_power": null, "theta": null,
     "target": "claim_count", "weights": null, "offset": null, "exposure": "exposure",
     "intercept": -2.3,
     "terms": [{"name": "driver_age", "type": "numeric", "coefficient": -0.011},
               {"name": "area", "type": "categorical", "levels": ["C", "A", "B"],
                "reference": "C", "coefficients": [0.0, 0.12, -0.05]}]}

A categorical's ``coefficients`` align with its ``levels``; the reference level's is 0.
Scoring: ``eta = intercept + sum(terms) + offset`` (offset = log(exposure) when the model was
fitted with an exposure), ``mu = linkinv(eta)``. A level not seen in training scores as the
reference level and is counted in a warning; a missing predictor column is an error. When the
offset or exposure column is absent, the prediction is per unit exposure (offset 0).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smglm.errors import ModelError, did_you_mean
from smglm.glm.links import linkinv

__all__ = [
    "ALIASED_NOTE",
    "FORMAT_VERSION",
    "CategoricalTerm",
    "NumericTerm",
    "PortableModel",
    "UnseenLevelWarning",
    "level_strings",
]

FORMAT = "smglm.glm"
FORMAT_VERSION = 1


#: The ``note`` of an aliased term in the coefficient table (R: "not defined because of
#: singularities").
ALIASED_NOTE = "aliased: not defined because of singularities"


class UnseenLevelWarning(UserWarning):
    """Scoring met categorical levels not seen in training; they scored as the reference."""


@dataclass(frozen=True)
class NumericTerm:
    name: str
    coefficient: float


@dataclass(frozen=True)
class CategoricalTerm:
    name: str
    levels: list[str]
    reference: str
    coefficients: list[float]


Term = NumericTerm | CategoricalTerm


@dataclass(frozen=True)
class PortableModel:
    """A fitted GLM as plain numbers: family, link, intercept and terms."""

    family: str
    link: str
    intercept: float
    terms: list[Term]
    target: str | None = None
    weights: str | None = None
    offset: str | None = None
    exposure: str | None = None
    tweedie_power: float | None = None
    theta: float | None = None
    smglm_version: str = field(default="", compare=False)
    #: The terms left out of the fit as linear combinations of earlier ones (R's ``NA``
    #: coefficients): scored as 0, shown without an estimate. In ``model.json`` only when some.
    aliased: list[str] = field(default_factory=list)

    # -- scoring -----------------------------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        """The predictor columns scoring needs (offset/exposure are optional)."""
        return [t.name for t in self.terms]

    def linear_predictor(
        self, data: pd.DataFrame, *, use_offset: bool = True
    ) -> tuple[np.ndarray, dict[str, int]]:
        """``eta`` for each row, and the count of unseen levels per categorical column."""
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame(data)
        missing = [c for c in self.input_columns if c not in data.columns]
        if missing:
            hint = did_you_mean(missing[0], [str(c) for c in data.columns])
            raise ModelError(
                f"missing column(s) {missing}: the model needs {self.input_columns}.{hint}"
            )
        n = len(data)
        eta = np.full(n, self.intercept, dtype=float)
        unseen: dict[str, int] = {}
        for term in self.terms:
            col = data[term.name]
            if isinstance(term, NumericTerm):
                eta += term.coefficient * _numeric(col, term.name)
                continue
            codes = _level_codes(col, term.levels)
            bad = codes < 0
            if bad.any():
                unseen[term.name] = int(bad.sum())
            coefs = np.asarray(term.coefficients, dtype=float)
            eta += np.where(bad, 0.0, coefs[np.where(bad, 0, codes)])
        if use_offset:
            if self.offset and self.offset in data.columns:
                eta += _numeric(data[self.offset], self.offset)
            elif self.exposure and self.exposure in data.columns:
                expo = _numeric(data[self.exposure], self.exposure)
                if (expo <= 0).any():
                    raise ModelError(
                        f"column {self.exposure!r} (exposure) must be > 0; got min {expo.min():g}"
                    )
                eta += np.log(expo)
        return eta, unseen

    def predict(self, data: pd.DataFrame, *, use_offset: bool = True) -> np.ndarray:
        """The predicted mean ``mu`` for each row of ``data``.

        Parameters
        ----------
        data
            A DataFrame (or a mapping of column name to values) with the predictor columns;
            the offset or exposure column is used when present (``use_offset``).
        """
        eta, unseen = self.linear_predictor(data, use_offset=use_offset)
        if unseen:
            detail = ", ".join(f"{c}: {k}" for c, k in unseen.items())
            warnings.warn(
                f"levels not seen in training scored as the reference level ({detail} rows)",
                UnseenLevelWarning,
                stacklevel=2,
            )
        return linkinv(self.link, eta)

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        terms: list[dict[str, Any]] = []
        for t in self.terms:
            if isinstance(t, NumericTerm):
                terms.append({"name": t.name, "type": "numeric", "coefficient": t.coefficient})
            else:
                terms.append(
                    {
                        "name": t.name,
                        "type": "categorical",
                        "levels": list(t.levels),
                        "reference": t.reference,
                        "coefficients": list(t.coefficients),
                    }
                )
        out = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "smglm_version": self.smglm_version,
            "family": self.family,
            "link": self.link,
            "tweedie_power": self.tweedie_power,
            "theta": self.theta,
            "target": self.target,
            "weights": self.weights,
            "offset": self.offset,
            "exposure": self.exposure,
            "intercept": self.intercept,
            "terms": terms,
        }
        if self.aliased:
            out["aliased"] = list(self.aliased)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PortableModel:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ModelError(
                f"not an smglm model: 'format' is {d.get('format') if isinstance(d, dict) else d!r}"
                f", expected {FORMAT!r}"
            )
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"model format_version {version!r} is not supported by smglm "
                f"{_version()}, which reads format_version {FORMAT_VERSION}; "
                "upgrade smglm to read newer models"
            )
        try:
            terms: list[Term] = []
            for t in d["terms"]:
                if t["type"] == "numeric":
                    terms.append(NumericTerm(str(t["name"]), float(t["coefficient"])))
                elif t["type"] == "categorical":
                    levels = [str(v) for v in t["levels"]]
                    coefs = [float(c) for c in t["coefficients"]]
                    if len(levels) != len(coefs) or str(t["reference"]) not in levels:
                        raise ModelError(f"term {t['name']!r}: levels and coefficients disagree")
                    terms.append(
                        CategoricalTerm(str(t["name"]), levels, str(t["reference"]), coefs)
                    )
                else:
                    raise ModelError(f"term {t.get('name')!r} has unknown type {t['type']!r}")
            intercept = d["intercept"]
            return cls(
                family=str(d["family"]),
                link=str(d["link"]),
                intercept=0.0 if intercept is None else float(intercept),
                terms=terms,
                target=d.get("target"),
                weights=d.get("weights"),
                offset=d.get("offset"),
                exposure=d.get("exposure"),
                tweedie_power=d.get("tweedie_power"),
                theta=d.get("theta"),
                smglm_version=str(d.get("smglm_version", "")),
                aliased=[str(a) for a in d.get("aliased") or []],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model.json is malformed: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` (``path`` is the file, or a folder to put it in)."""
        p = Path(path)
        if p.is_dir():
            p = p / "model.json"
        p.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> PortableModel:
        """Read ``model.json`` (``path`` is the file, or a model folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "model.json"
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read model file {str(p)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ModelError(f"{str(p)!r} is not JSON (not UTF-8 text: {exc.reason})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{str(p)!r} is not JSON: {exc}") from None
        return cls.from_dict(data)


def _version() -> str:
    from smglm._version import __version__

    return __version__


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(col.dtype):
        converted = pd.to_numeric(col, errors="coerce")
        bad = converted.isna() & col.notna()
        if bad.any():
            example = col[bad].iloc[0]
            raise ModelError(f"column {name!r} must be numeric; got values such as {example!r}")
        col = converted
    try:
        values = col.to_numpy(dtype=float, na_value=np.nan)
    except (OverflowError, TypeError, ValueError):  # e.g. an integer beyond float range
        raise ModelError(
            f"column {name!r} must hold finite numbers; got values out of range"
        ) from None
    if not np.isfinite(values).all():
        k = int((~np.isfinite(values)).sum())
        raise ModelError(f"column {name!r} has {k} missing or infinite value(s); need numbers")
    return values


def level_strings(col: pd.Series) -> np.ndarray:
    """The values of a column as level strings (None where missing), the same way for
    training and scoring: integer-valued floats print as integers ('3', not '3.0')."""
    values = col.to_numpy()
    if values.dtype.kind in "iub":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        out = np.empty(values.size, dtype=object)
        finite = np.isfinite(values)
        ints = finite & (values == np.round(values))
        out[ints] = values[ints].astype(np.int64).astype(str)
        other = finite & ~ints
        out[other] = values[other].astype(str)
        out[~finite] = None
        return out
    missing = pd.isna(values)
    out = np.array(
        [None if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object
    )
    return out


def _level_codes(col: pd.Series, levels: list[str]) -> np.ndarray:
    """Position of each value in ``levels`` (as strings), -1 when unseen or missing."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in col.cat.categories]
        lookup = {lv: i for i, lv in enumerate(levels)}
        mapping = np.array([lookup.get(c, -1) for c in cats] + [-1], dtype=np.int64)
        return mapping[col.cat.codes.to_numpy()]  # code -1 (NaN) takes the last entry
    strings = level_strings(col)
    codes = pd.Index(levels).get_indexer(pd.Index(strings, dtype=object))
    return np.asarray(codes, dtype=np.int64)
