"""The wire formats of ``/invocations``: content negotiation, request parsing, response encoding.

Request bodies (``Content-Type``; parameters such as ``; charset=utf-8`` are accepted):

``text/csv``
    One row per line, comma-separated. The first line is a **header** when one of its fields
    (whitespace and quotes stripped) names a model column: a predictor, the exposure or the
    offset; columns are then matched by name and extra columns (the target, ids) are ignored.
    Otherwise there is no header and each line holds, in order, the model's ``input_columns``,
    optionally followed by its exposure (or offset) column. RFC 4180's ``header=present`` or
    ``header=absent`` parameter overrides the guess. Blank lines are skipped.
``application/json``
    Records ``[{"col": v, ...}, ...]``, rows ``[[v, ...], ...]`` (positional, as a CSV without a
    header), columns ``{"col": [v, ...], ...}``, one record ``{"col": v, ...}``, or any of the
    list forms wrapped as ``{"instances": [...]}``.
``application/jsonlines`` (also ``application/x-jsonlines``)
    One record (object) or positional row (array) per line.

Without the exposure (or offset) column the predictions are per unit of exposure (offset 0).

Responses (``Accept``; default: the request's type): ``text/csv`` one prediction per line;
``application/json`` ``{"predictions": [...]}``; ``application/jsonlines`` one
``{"prediction": v}`` per line. Floats are written with ``repr`` (shortest round-trip).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from smglm.errors import SmglmError
from smglm.glm.io import EXACT_FLOATS

__all__ = [
    "CSV",
    "JSON",
    "JSONLINES",
    "Batch",
    "ModelColumns",
    "RequestError",
    "choose_response_type",
    "encode_predictions",
    "parse_body",
    "parse_content_type",
]

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
#: Media types accepted, and the canonical type each stands for.
MEDIA_TYPES = {
    "text/csv": CSV,
    "application/json": JSON,
    "application/jsonlines": JSONLINES,
    "application/x-jsonlines": JSONLINES,
}
#: CSV bodies up to this size, without quotes, are split in Python (faster than pandas for
#: the few-row requests of a real-time endpoint); larger ones go through ``pandas.read_csv``.
FAST_CSV_BYTES = 64 * 1024


class RequestError(SmglmError):
    """A request the server cannot answer; ``status`` is the HTTP status (4xx) to send."""

    def __init__(
        self, status: int, message: str, *, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.status = status
        self.headers = list(headers)
        super().__init__(message)


@dataclass(frozen=True)
class ModelColumns:
    """The columns a request must or may carry, from the model."""

    predictors: list[str]
    numeric: list[str]
    categorical: list[str]
    extra: str | None  # the exposure or offset column, optional in requests

    @cached_property
    def known(self) -> frozenset[str]:
        """The predictors and the exposure/offset column: the columns a request may use."""
        return frozenset([*self.predictors, *([self.extra] if self.extra else [])])

    def positional(self, width: int, where: str) -> list[str]:
        """Column names of a row of ``width`` values without a header."""
        if width == len(self.predictors):
            return list(self.predictors)
        if self.extra and width == len(self.predictors) + 1:
            return [*self.predictors, self.extra]
        allowed = f"{len(self.predictors)} ({self.predictors})"
        if self.extra:
            allowed += f" or {len(self.predictors) + 1} (the same, then {self.extra!r})"
        raise RequestError(
            400,
            f"{where} has {width} value(s) and no header names them; rows without a header "
            f"need {allowed}, in that order; or send a header row naming the columns",
        )


@dataclass
class Batch:
    """Parsed rows: raw values by column (``columns``) when the parser made them, and a way to
    build the reference DataFrame (``frame()``) that :class:`~smglm.glm.model.PortableModel`
    scores. ``positional`` says the columns were named by position (for error hints)."""

    columns: dict[str, list[Any]] | None
    frame: Callable[[], pd.DataFrame]
    positional: bool = False
    text: bool = False  # every value in ``columns`` is a str (CSV)


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """The canonical media type of ``header`` and its parameters; 415 if unsupported."""
    media, params = _media_range(header or "")
    if media not in MEDIA_TYPES:
        got = f"{header!r}" if header else "no Content-Type"
        raise RequestError(
            415, f"unsupported Content-Type: {got}; send one of {sorted(set(MEDIA_TYPES))}"
        )
    return MEDIA_TYPES[media], params


def choose_response_type(accept: str | None, request_type: str) -> str:
    """The response media type for an ``Accept`` header (406 if none is acceptable)."""
    if not accept or not accept.strip():
        return request_type
    ranges = []
    for i, part in enumerate(accept.split(",")):
        media, params = _media_range(part)
        if not media:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, i, media))
    for _, _, media in sorted(ranges):
        if media == "*/*":
            return request_type
        if media in MEDIA_TYPES:
            return MEDIA_TYPES[media]
        if media.endswith("/*"):
            major = media[:-1]
            if request_type.startswith(major):
                return request_type
            for canonical in (CSV, JSON, JSONLINES):
                if canonical.startswith(major):
                    return canonical
    raise RequestError(
        406, f"cannot answer in {accept!r}; Accept one of {[CSV, JSON, JSONLINES]} (or */*)"
    )


def _media_range(text: str) -> tuple[str, dict[str, str]]:
    media, _, rest = text.partition(";")
    params = {}
    for item in rest.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def decode(body: bytes, params: dict[str, str]) -> str:
    """The body as text, in the ``charset`` parameter's encoding (default UTF-8, BOM dropped)."""
    charset = params.get("charset", "utf-8").lower()
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        raise RequestError(415, f"unknown charset {charset!r}; send UTF-8") from None
    try:
        return body.decode("utf-8-sig" if name == "utf-8" else name)
    except UnicodeDecodeError as exc:
        raise RequestError(
            400, f"the body is not valid {charset}: {exc.reason} at byte {exc.start}"
        ) from None


def parse_body(text: str, media: str, params: dict[str, str], cols: ModelColumns) -> Batch:
    """Parse a request body into a :class:`Batch`; 400 for anything unparsable or empty."""
    if not text.strip():
        raise RequestError(400, "the request body holds no rows to score")
    if media == CSV:
        return _parse_csv(text, params.get("header", "").lower(), cols)
    if media == JSON:
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise RequestError(400, f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise RequestError(400, _TOO_DEEP.format(where="the body")) from None
        return _from_json(obj, cols)
    lines = [ln for ln in text.split("\n") if ln.strip()]  # not splitlines(): JSON strings
    # may hold U+2028 and other characters that splitlines() breaks on
    try:
        rows = [json.loads(line) for line in lines]
    except (ValueError, RecursionError):
        for i, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except ValueError as exc:
                raise RequestError(400, f"JSON lines: line {i} is not valid JSON: {exc}") from None
            except RecursionError:
                where = f"JSON lines: line {i}"
                raise RequestError(400, _TOO_DEEP.format(where=where)) from None
        raise
    return _from_rows(rows, cols, "JSON lines")


_TOO_DEEP = (
    "{where} nests arrays or objects too deeply to read; a row is an object of values or an "
    "array of values (one level), inside at most a list and an 'instances' wrapper"
)


# -- CSV -------------------------------------------------------------------------------------
def _parse_csv(text: str, header_param: str, cols: ModelColumns) -> Batch:
    text = text.lstrip("\r\n")
    first = re.split(r"\r\n|\n|\r", text, maxsplit=1)[0]
    try:
        fields = next(csv.reader([first]))
    except (csv.Error, StopIteration) as exc:
        raise RequestError(400, f"CSV: cannot read the first line: {exc}") from None
    names = [f.strip() for f in fields]
    raw: dict[str, str] = {}
    if header_param in ("present", "absent"):
        has_header = header_param == "present"
    else:
        has_header = any(n in cols.known for n in names)
    if has_header:
        dupes = sorted({n for n in names if n in cols.known and names.count(n) > 1})
        if dupes:
            raise RequestError(400, f"the CSV header names column(s) {dupes} more than once")
        raw = dict(zip(names, fields, strict=True))
    else:
        names = cols.positional(len(fields), "CSV line 1")

    def frame() -> pd.DataFrame:
        return _read_csv(text, has_header, names, raw, cols)

    columns = None
    if '"' not in text and len(text) <= FAST_CSV_BYTES:
        flat = text.replace("\r\n", "\n") if "\r" in text else text
        if "\r" not in flat:  # lines end as pandas ends them: no quotes, no lone CR
            columns = _split_csv(flat, has_header, names, cols)
    return Batch(columns, frame, positional=not has_header, text=True)


def _split_csv(
    text: str, has_header: bool, names: list[str], cols: ModelColumns
) -> dict[str, list[Any]] | None:
    """Raw string values by column, or None when the lines do not all have ``len(names)``
    fields (``pandas.read_csv`` then reports the problem)."""
    rows = [line.split(",") for line in text.split("\n") if line]
    if has_header:
        rows = rows[1:]
    width = len(names)
    if not rows or any(len(r) != width for r in rows):
        return None
    known = cols.known
    return {n: list(c) for n, c in zip(names, zip(*rows, strict=True), strict=True) if n in known}


def _read_csv(
    text: str, has_header: bool, names: list[str], raw: dict[str, str], cols: ModelColumns
) -> pd.DataFrame:
    known = cols.known
    if has_header:
        usecols = [raw[n] for n in names if n in known]
        dtype = {raw[n]: str for n in cols.categorical if n in raw}
    else:
        usecols = names
        dtype = {n: str for n in cols.categorical if n in names}
    try:
        df = pd.read_csv(
            io.StringIO(text),
            header=0 if has_header else None,
            names=None if has_header else names,
            usecols=usecols,
            dtype=dtype,
            **EXACT_FLOATS,
        )
    except (ValueError, csv.Error, pd.errors.ParserError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RequestError(400, f"CSV: {msg}") from None
    if has_header:
        df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise RequestError(400, "CSV: a header row but no data rows")
    return df


# -- JSON ------------------------------------------------------------------------------------
def _from_json(obj: Any, cols: ModelColumns) -> Batch:
    if isinstance(obj, dict):
        if isinstance(obj.get("instances"), list) and "instances" not in cols.known:
            return _from_rows(obj["instances"], cols, "JSON instances")
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        if not lists:
            return _from_rows([obj], cols, "JSON")
        if len(lists) != len(obj):
            scalars = [k for k in obj if k not in lists]
            raise RequestError(
                400,
                "JSON object: give every column a list of values (columns) or every column "
                f"one value (a record); got lists for {lists} and single values for {scalars}",
            )
        lengths = {k: len(v) for k, v in obj.items()}
        if len(set(lengths.values())) != 1:
            raise RequestError(400, f"JSON columns have different lengths: {lengths}")
        if not next(iter(lengths.values())):
            raise RequestError(400, "JSON columns hold no rows to score")
        columns = {str(k): v for k, v in obj.items() if k in cols.known}
        _check_scalars(columns, "JSON columns")
        return Batch(columns, lambda: pd.DataFrame(columns))
    if isinstance(obj, list):
        return _from_rows(obj, cols, "JSON")
    raise RequestError(
        400,
        'JSON: expected records [{...}], rows [[...]], columns {"col": [...]} or '
        f'{{"instances": [...]}}; got a {_json_kind(obj)}',
    )


def _from_rows(rows: list[Any], cols: ModelColumns, what: str) -> Batch:
    if not rows:
        raise RequestError(400, f"{what}: no rows to score")
    if all(isinstance(r, dict) for r in rows):
        present = {k for r in rows for k in r}
        columns = {c: [r.get(c) for r in rows] for c in cols.known if c in present}
        positional = False
    elif all(isinstance(r, list) for r in rows):
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise RequestError(400, f"{what}: rows have different lengths {sorted(widths)}")
        names = cols.positional(widths.pop(), f"{what} row 1")
        columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
        positional = True
    else:
        kinds = sorted({_json_kind(r) for r in rows})
        raise RequestError(
            400, f"{what}: rows must all be objects (records) or all arrays; got {kinds}"
        )
    _check_scalars(columns, what)
    return Batch(columns, lambda: pd.DataFrame(columns), positional=positional)


def _check_scalars(columns: dict[str, list[Any]], what: str) -> None:
    for name, values in columns.items():
        for i, v in enumerate(values):
            if isinstance(v, (dict, list)):
                raise RequestError(
                    400,
                    f"{what}: column {name!r} row {i + 1} is a {type(v).__name__}; "
                    "values must be numbers, strings, booleans or null",
                )


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


# -- responses -------------------------------------------------------------------------------
def encode_predictions(values: Sequence[float], media: str) -> bytes:
    """The response body for finite ``values`` in ``media`` (a canonical type)."""
    if media == CSV:
        return ("\n".join(map(repr, values)) + "\n").encode()
    if media == JSON:
        return json.dumps({"predictions": list(values)}).encode()
    return "".join(f'{{"prediction": {v!r}}}\n' for v in values).encode()
