"""The serving WSGI application: routes, body limits, error statuses, and scoring with a fast path.

Routes: ``GET /ping`` (200, empty body: the app exists only once its model is loaded),
``POST /invocations`` (scoring, see :mod:`smglm.runtime._codec` for the formats) and
``GET /execution-parameters`` (batch transform). Every client mistake is a 4xx with a JSON body
``{"error": "<what was wrong>"}``; only a bug gives a 500.

Scoring has two paths that give the same numbers. The fast path scores raw values (a few CSV
lines split in Python, parsed JSON) with the model's coefficients, adding terms in the same
order with the same numpy operations as :meth:`PortableModel.linear_predictor`; it accepts only
clean input (every level known, every number finite, exposure positive). Anything else goes to
the reference path: a DataFrame scored by :meth:`PortableModel.linear_predictor` itself, which
counts unseen levels and raises :class:`~smglm.errors.ModelError` for bad columns.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from smglm.errors import ModelError
from smglm.glm.links import linkinv
from smglm.glm.model import PortableModel
from smglm.glm.terms import CategoricalTerm, NumericTerm
from smglm.runtime._codec import (
    Batch,
    ModelColumns,
    RequestError,
    choose_response_type,
    decode,
    encode_predictions,
    parse_body,
    parse_content_type,
)

__all__ = ["MAX_PAYLOAD_BYTES", "UNSEEN_HEADER", "Scorer", "ServeApp"]

log = logging.getLogger(__name__)

#: SageMaker's limit on a request body: 6 MB (InvokeEndpoint's BodyBlob, 6,291,456 bytes).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: A body over the limit is still read (and dropped) up to this size before the 413 is sent: a
#: client that writes its whole body before reading (most do) would otherwise see the
#: connection reset instead of the answer. Larger bodies are refused without reading. (Under
#: ``serve``'s asyncio front the front refuses them first, lingering without a size bound; this
#: is for other WSGI servers, as ``--worker-class gthread``.)
DRAIN_BYTES = 32 * 1024 * 1024
#: Response header counting rows whose categorical level was unseen: ``area=2,region=1``.
UNSEEN_HEADER = "X-Smglm-Unseen-Levels"
#: Strings ``pandas.read_csv`` reads as missing: the fast path leaves them to the reference path.
_NA_STRINGS = frozenset(
    {
        *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
        *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
    }
)

Response = tuple[int, list[tuple[str, str]], bytes]


class Scorer:
    """Predictions for a :class:`~smglm.runtime._codec.Batch`, equal to ``model.predict``."""

    def __init__(self, model: PortableModel) -> None:
        self.model = model
        self._terms: list[tuple[str, float, dict[str, float] | None]] = []
        self._levels: dict[str, dict[str, float]] = {}
        for t in model.terms:
            if isinstance(t, NumericTerm):
                self._terms.append((t.name, t.coefficient, None))
            elif isinstance(t, CategoricalTerm):
                lookup = dict(zip(t.levels, map(float, t.coefficients), strict=True))
                for group, members in (t.groups or {}).items():  # raw levels of a group
                    lookup.update({m: lookup[group] for m in members if group in lookup})
                self._terms.append((t.name, 0.0, lookup))
                self._levels[t.name] = lookup
        # the fast path scores numeric and categorical terms; bands, splines and interactions
        # take the reference path (PortableModel.linear_predictor)
        self._fast_ok = len(self._terms) == len(model.terms)
        self.columns = ModelColumns(
            predictors=model.input_columns,
            numeric=[t.name for t in model.main_terms if not isinstance(t, CategoricalTerm)],
            categorical=list(self._levels),
            extra=model.offset or model.exposure,
        )

    def score(self, batch: Batch) -> tuple[np.ndarray, dict[str, int]]:
        """The predicted means, and the count of unseen levels per categorical column.

        Raises
        ------
        ModelError
            A predictor column is missing, a numeric column is not numeric or has missing
            values, or the exposure is not positive.
        """
        if batch.columns is not None and self._fast_ok:
            eta = self._fast_eta(batch.columns, batch.text)
            if eta is not None:
                return linkinv(self.model.link, eta), {}
        cols = self.columns
        try:  # pandas raises OverflowError for an integer beyond float range (JSON 1e400):
            frame = self._normalize_levels(batch.frame())  # pandas 2 building the frame
            self._refuse_booleans(frame, [*cols.numeric, *([cols.extra] if cols.extra else [])])
            eta, unseen = self.model.linear_predictor(frame)  # pandas 3 converting it
        except OverflowError as exc:
            raise ModelError(f"a number is too large to convert to float: {exc}") from None
        self._refuse_booleans(frame, cols.categorical)  # after the model's checks: they come first
        return linkinv(self.model.link, eta), unseen

    def _fast_eta(self, cols: dict[str, list[Any]], text: bool) -> np.ndarray | None:
        """``eta`` as :meth:`PortableModel.linear_predictor` computes it, or None when the
        input is not clean (the reference path then scores it and reports the problem)."""
        m = self.model
        try:
            n = len(next(iter(cols.values())))
            eta = np.full(n, m.intercept, dtype=float)
            for name, coef, lookup in self._terms:
                if lookup is None:
                    eta += coef * _floats(cols[name], text)
                else:
                    eta += _contributions(cols[name], lookup)
            if m.offset and m.offset in cols:
                eta += _floats(cols[m.offset], text)
            elif m.exposure and m.exposure in cols:
                expo = _floats(cols[m.exposure], text)
                if not (expo > 0).all():
                    return None
                eta += np.log(expo)
        except (KeyError, ValueError, TypeError, OverflowError, StopIteration):
            return None
        return eta

    def _refuse_booleans(self, frame: pd.DataFrame, names: list[str]) -> None:
        """A 400 for a JSON ``true``/``false`` (or a CSV column of them) where a number is due
        (pandas would read it as 1/0 and score it silently), or in a categorical column whose
        levels are not spelled as booleans (it would score as an unseen level)."""
        for name in names:
            if name not in frame.columns:
                continue
            col = frame[name]
            if pd.api.types.is_bool_dtype(col.dtype):
                row = 0
            elif col.dtype == object:
                values = col.to_numpy()
                row = next((i for i, v in enumerate(values) if isinstance(v, (bool, np.bool_))), -1)
                if row < 0:
                    continue
            else:
                continue
            value = bool(col.iloc[row])
            if name in self._levels:
                levels = self._levels[name]
                if str(value) in levels or str(value).lower() in levels:
                    continue
                allowed = f"is categorical, with levels {sorted(levels)[:10]}"
            else:
                allowed = "must be numeric"
            raise RequestError(
                400,
                f"column {name!r} {allowed}; row {row + 1} holds the boolean "
                f"{str(value).lower()}: send a {'level' if name in self._levels else 'number'}",
            )

    def _normalize_levels(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Map unseen text levels that only differ in spacing or number formatting ('B ',
        '2.0', '02') onto the model's level ('B', '2'); what remains unseen stays as is."""
        for name, lookup in self._levels.items():
            if name not in frame.columns or pd.api.types.is_numeric_dtype(frame[name].dtype):
                continue
            aliases = {}
            for value in frame[name].unique():
                if not (isinstance(value, str) and value in lookup):
                    alias = _level_alias(value, lookup)
                    if alias is not None:
                        aliases[value] = alias
            if aliases:
                values = frame[name].to_numpy(dtype=object)
                frame[name] = np.array([aliases.get(v, v) for v in values], dtype=object)
        return frame


def _floats(values: list[Any], text: bool) -> np.ndarray:
    """Finite floats from CSV strings or JSON numbers (else an error: not the fast path)."""
    if text or all(type(v) is str for v in values):
        joined = "".join(values)
        if "_" in joined or not joined.isascii():  # float() reads '1_0', '١٢'; pandas does not
            raise ValueError(joined)
    elif not all(type(v) is float or type(v) is int for v in values):
        raise TypeError("not all numbers")
    out = np.array(values, dtype=float)
    if not np.isfinite(out).all():
        raise ValueError("not finite")
    return out


def _contributions(values: list[Any], lookup: dict[str, float]) -> np.ndarray:
    """Each value's coefficient; KeyError for an unseen level or a value the reference path
    might read differently (a missing-value string, a float)."""
    if _NA_STRINGS.isdisjoint(lookup):  # always, unless a level is spelled like NA
        try:
            return np.array([lookup[v] for v in values], dtype=float)
        except (KeyError, TypeError):
            pass  # integers, or unseen: look again value by value
    return np.array([lookup[_level_key(v)] for v in values], dtype=float)


def _level_key(v: Any) -> str:
    t = type(v)
    if t is str and v not in _NA_STRINGS:
        return v
    if t is int:
        return str(v)
    raise KeyError(v)


def _level_alias(v: Any, lookup: dict[str, float]) -> str | None:
    if isinstance(v, str):
        text = v.strip()
        if text in lookup:
            return text
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        text = str(v)
    else:
        return None
    if not text.isascii() or "_" in text:
        return None
    try:
        f = float(text)
    except ValueError:
        return None
    if not math.isfinite(f):
        return None
    key = str(int(f)) if f.is_integer() else repr(f)
    return key if key in lookup else None


class ServeApp:
    """The WSGI application of ``serve``, around one loaded model.

    Parameters
    ----------
    model
        The model to score with (loaded before the server accepts connections).
    workers
        Worker processes, reported as ``MaxConcurrentTransforms``.
    max_payload_bytes
        The largest request body accepted; larger ones get 413.
    """

    def __init__(
        self, model: PortableModel, *, workers: int, max_payload_bytes: int = MAX_PAYLOAD_BYTES
    ) -> None:
        self.scorer = Scorer(model)
        self.max_payload_bytes = max_payload_bytes
        self.execution_parameters = {
            "MaxConcurrentTransforms": workers,
            "BatchStrategy": "MultiRecord",  # the API spelling (SDK local mode accepts only it)
            "MaxPayloadInMB": max_payload_bytes // (1024 * 1024),
        }

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            status, headers, body = self._route(environ)
        except RequestError as exc:
            log.info(
                "%s %s -> %d: %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                exc.status,
                exc,
            )
            status, headers, body = _error(exc.status, str(exc), exc.headers)
        except Exception:
            log.exception("internal error answering %s", environ.get("PATH_INFO"))
            status, headers, body = _error(500, "internal server error; see the server log")
        headers.append(("Content-Length", str(len(body))))
        start_response(_STATUS_LINES.get(status) or _status_line(status), headers)
        return [body]

    def _route(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/invocations":
            _allow(method, "POST")
            return self._invoke(environ)
        if path == "/ping":
            _allow(method, "GET", "HEAD")
            return 200, [("Content-Type", "text/plain")], b""
        if path == "/execution-parameters":
            _allow(method, "GET", "HEAD")
            body = json.dumps(self.execution_parameters).encode()
            return 200, [("Content-Type", "application/json")], body
        raise RequestError(
            404,
            f"no such path {path!r}; this server answers /ping, /invocations and "
            "/execution-parameters",
        )

    def _invoke(self, environ: dict[str, Any]) -> Response:
        media, params = parse_content_type(environ.get("CONTENT_TYPE"))
        out = choose_response_type(environ.get("HTTP_ACCEPT"), media)
        text = decode(self._read_body(environ), params)
        batch = parse_body(text, media, params, self.scorer.columns)
        try:
            mu, unseen = self.scorer.score(batch)
        except ModelError as exc:
            hint = ""
            if batch.positional:
                cols = self.scorer.columns
                order = cols.predictors + ([f"[{cols.extra}]"] if cols.extra else [])
                hint = f" (rows without a header hold the columns {order} in this order)"
            raise RequestError(400, f"{exc}{hint}") from None
        finite = np.isfinite(mu)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0]) + 1
            raise RequestError(
                400,
                f"{int((~finite).sum())} prediction(s) are not finite numbers (first: "
                f"row {first}); check the scale of the inputs",
            )
        headers = [("Content-Type", out)]
        if unseen:
            counts = ",".join(f"{quote(c, safe='')}={k}" for c, k in unseen.items())
            headers.append((UNSEEN_HEADER, counts))
        return 200, headers, encode_predictions(mu.tolist(), out)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The body, at most ``max_payload_bytes`` (413 beyond, decided from Content-Length
        before reading, or while reading a chunked body)."""
        limit = self.max_payload_bytes
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        too_big = (
            f"the limit is {limit} bytes ({limit / 2**20:g} MiB): split the rows over several "
            "requests"
        )
        if length:
            try:
                n = int(length)
            except ValueError:
                raise RequestError(400, f"Content-Length {length!r} is not a number") from None
            if n > limit:
                if n <= DRAIN_BYTES:
                    _drain(stream, n)
                raise RequestError(413, f"the body is {n} bytes; {too_big}")
            body: bytes = stream.read(n)
            if len(body) != n:
                raise RequestError(400, f"the body ended after {len(body)} of {n} bytes")
            return body
        chunks, total = [], 0  # chunked transfer: count while reading
        while chunk := stream.read(1 << 16):
            total += len(chunk)
            if total > limit:
                _drain(stream, DRAIN_BYTES - total)
                raise RequestError(413, f"the chunked body is too large; {too_big}")
            chunks.append(chunk)
        return b"".join(chunks)


def _drain(stream: Any, n: int) -> None:
    """Read and drop up to ``n`` bytes, so that a client still sending can read the 413."""
    while n > 0 and (chunk := stream.read(min(n, 1 << 20))):
        n -= len(chunk)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise RequestError(
            405,
            f"method {method} is not allowed here; use {' or '.join(allowed)}",
            headers=[("Allow", ", ".join(allowed))],
        )


def _error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps({"error": message}).encode()
    return status, [("Content-Type", "application/json"), *headers], body


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


_STATUS_LINES = {s: _status_line(s) for s in (200, 400, 404, 405, 406, 413, 415, 500)}
