"""A model formula (R / Wilkinson style) as another spelling of a GLMConfig's model.

``GLMConfig`` takes a ``formula`` instead of ``target``, ``predictors``, ``categorical``,
``terms``, ``interactions``, ``exposure``/``offset``, ``fit_intercept`` (and ``fixed``, when the
formula has ``fixed(...)`` terms): the formula is parsed into those fields, which are what the
config holds and the model records (``to_dict`` has no formula). Example (YAML)::

    formula: >-
      claim_count ~ ns(driver_age, 5) + bands(bonus_malus, 60, 80, 100) + area * region
      + driver_age:area + C(vehicle_group) + offset(log(exposure))
    family: poisson

What a formula may hold (anything else is a ConfigError naming ``formula``, the piece, its
position and what is allowed):

- ``y ~ a + b``: target ``y``, predictors ``a`` and ``b``; ``y ~ 1``: no predictors.
- ``a * b`` is ``a + b + a:b``; ``a:b`` is the interaction of a pair. Main effects are always
  in the model, so ``a`` and ``b`` of ``a:b`` become predictors too. ``(a + b) * c`` is
  ``a + b + c + a:c + b:c``. A three-way interaction is an error: smglm fits pairs.
- ``- 1``, ``+ 0`` or ``0 +``: no intercept (``+ 1`` keeps it). Only ``1`` may be
  subtracted: to leave a predictor out, do not list it.
- ``C(x)``, ``factor(x)``, ``as.factor(x)``: ``x`` is categorical (listed under
  ``categorical``). Level options as arguments: ``base = "R05"`` (the reference level;
  patsy's ``Treatment("R05")`` or ``Treatment(reference = "R05")`` too), ``groups =
  list(north = c(R01, R02), south = c(R04))`` (or ``{north: [R01, R02]}``), ``missing =
  level`` (missing values as the level ``(missing)``).
- ``levels(x, base = ..., groups = ..., missing = level)``: the same options without listing
  ``x`` under ``categorical`` (a text column is categorical anyway); R's ``relevel(x, "R05")``
  sets the base.
- ``ns(x, 5)`` or ``ns(x, df = 5)``: a natural cubic spline with 5 basis columns;
  ``ns(x, knots = c(25, 35))`` (or ``[25, 35]``) with these interior knots; ``boundary =
  c(18, 90)`` (R's ``Boundary.knots`` too).
- ``ms(x, 4, increasing)`` or ``ms(x, decreasing, knots = c(...))``: a monotone spline (the
  direction is required); ``ns(x, df = 4, monotone = decreasing)`` is the same.
- ``bands(x, 60, 80, 100)`` (or ``bands(x, c(60, 80, 100))``): bands with these interior cut
  points, ``[lower, upper)``, with the level options above. R's ``cut(x, c(-Inf, 60, 80,
  Inf), right = FALSE)`` is the same: ``-Inf``/``Inf`` at the ends are dropped, and
  ``right = TRUE`` is refused (smglm's bands are closed on the left).
- ``fixed(x, 0.09)``: a coefficient fixed, not fitted; ``fixed(area, A = 1.2, B = 1.35)`` (or
  ``c(A = 1.2, ...)``, ``{A: 1.2, ...}``): fixed relativities. The term may be a call:
  ``fixed(bands(x, 60), "[-Inf,60)" = 1, "[60,Inf)" = 0.9)``.
- ``offset(log(e))``: exposure ``e``; ``offset(o)``: offset column ``o``.

A column may appear several times (``ns(x, 5) + x:area``); it enters one way (``ns(x, 5) +
bands(x, 60)`` is an error). Values that are names (levels, ``increasing``) may be written
bare or quoted. A formula is at most 100,000 characters, 10,000 terms after expanding
products, and 40 parentheses deep.

In YAML, quote the formula (or use ``>-`` as above) when it holds ``: `` or `` #``, which YAML
reads as a mapping or a comment. Column names that are not plain names go in backquotes
(`` `my col` ``) or ``Q("my col")``.
:func:`formula_text` writes a config's model back as a formula.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from smglm.errors import ConfigError, Issue

__all__ = ["FORMULA_FIELDS", "expand_formula", "formula_text", "parse_formula"]

#: The GLMConfig fields a formula sets (``fixed`` only when it has ``fixed(...)`` terms).
FORMULA_FIELDS = (
    "target",
    "predictors",
    "categorical",
    "terms",
    "interactions",
    "exposure",
    "offset",
    "fit_intercept",
)

#: What the formula language holds, for error messages.
ALLOWED = (
    "Allowed: 'target ~ terms' with +, * (a * b = a + b + a:b), : (a pair), - 1 or + 0 (no "
    "intercept); a term is a column, C(x) or factor(x), levels(x, base=, groups=, missing=level), "
    "ns(x, df) or ns(x, knots=c(...)), ms(x, df, increasing|decreasing), bands(x, cuts...) or "
    "cut(x, c(...)), fixed(x, value), offset(log(e)) or offset(o)"
)
#: The deepest nesting of parentheses a formula may have.
MAX_DEPTH = 40
#: The longest formula read (characters).
MAX_LENGTH = 100_000
#: The most terms a formula may expand to (``(a + b) * (c + d)`` is 8).
MAX_TERMS = 10_000

_NAME = re.compile(r"[^\W\d][\w.]*|\.(?![0-9])[\w.]*")
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r"[^\W\d][\w.]*\Z")
_DIGITS = frozenset("0123456789")
_OPS = set("~+-*:(),=[]{}")
_WORDS = {"TRUE": True, "True": True, "FALSE": False, "False": False}


# -- errors ------------------------------------------------------------------------------------
class _Error(Exception):
    def __init__(self, message: str, pos: int, end: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.end = end


def _issue(text: str, err: _Error) -> ConfigError:
    end = err.end if err.end is not None else err.pos + 1
    piece = text[err.pos : max(end, err.pos + 1)].strip() or "(the end)"
    if err.pos >= len(text):
        where, piece = "at the end", "(the end)"
    else:
        where = f"{piece!r} at position {err.pos + 1}"
    return ConfigError(
        [
            Issue(
                "formula",
                f"{where} of {_excerpt(text)!r}: {err.message}. {ALLOWED}",
                piece,
            )
        ]
    )


def _excerpt(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tok:
    kind: str  # name | quoted (`a name`) | number | string | op | end
    value: str
    pos: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        number = _NUMBER.match(text, i) if ch in _DIGITS or ch == "." else None
        name = _NAME.match(text, i) if number is None else None
        if number is not None:
            out.append(_Tok("number", number.group(), i, number.end()))
            i = number.end()
        elif name is not None:
            out.append(_Tok("name", name.group(), i, name.end()))
            i = name.end()
        elif ch in "`'\"":
            j = text.find(ch, i + 1)
            if j < 0:
                raise _Error(f"an unclosed {ch}", i, n)
            out.append(_Tok("quoted" if ch == "`" else "string", text[i + 1 : j], i, j + 1))
            i = j + 1
        elif ch in _OPS:
            out.append(_Tok("op", ch, i, i + 1))
            i += 1
        else:
            j = i + 1
            while j < n and not (text[j].isspace() or text[j] in _OPS):
                j += 1
            raise _Error(f"{text[i:j]!r} is not allowed", i, j)
    out.append(_Tok("end", "", n, n))
    return out


# -- values (call arguments) -------------------------------------------------------------------
@dataclass(frozen=True)
class _Val:
    """A parsed argument: ``kind`` is name, number, string, bool, list, dict or call."""

    kind: str
    value: Any
    pos: int
    end: int
    fn: str = ""
    args: tuple[tuple[str | None, _Val], ...] = ()


# -- terms -------------------------------------------------------------------------------------
@dataclass
class _Factor:
    """One column in a term (with how it enters), or a special: offset, exposure, intercept."""

    kind: str  # column | offset | exposure | intercept
    name: str = ""
    spec: dict[str, Any] | None = None
    categorical: bool = False
    fixed: Any = None
    has_fixed: bool = False
    pos: int = 0
    end: int = 0


_Term = tuple[_Factor, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    # token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, op: str) -> bool:
        return self.tok.kind == "op" and self.tok.value == op

    def expect(self, op: str, what: str) -> _Tok:
        if not self.at(op):
            tok = self.tok
            found = "the end" if tok.kind == "end" else repr(tok.value)
            raise _Error(f"expected {what}, found {found}", tok.pos, tok.end)
        return self.take()

    def nest(self, opening: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Error(f"parentheses nest deeper than {MAX_DEPTH} levels", opening.pos)

    # the formula
    def formula(self) -> tuple[str, list[_Term], bool | None]:
        tok = self.tok
        if tok.kind == "op" and tok.value == "~":
            raise _Error("the target (left of '~') is missing", tok.pos, tok.end)
        if tok.kind not in ("name", "quoted"):
            raise _Error("expected the target column before '~'", tok.pos, tok.end)
        self.take()
        if self.at("("):
            raise _Error(
                "the target must be a column (transform it in the data)", tok.pos, self.tok.end
            )
        target = tok.value
        self.expect("~", "'~' after the target")
        if self.tok.kind == "end":
            raise _Error(
                "no terms right of '~' (write 1 for an intercept-only model)", self.tok.pos
            )
        terms, intercept = self.sum()
        if self.tok.kind != "end":
            tok = self.tok
            raise _Error(f"unexpected {tok.value!r}", tok.pos, tok.end)
        return target, terms, intercept

    def sum(self) -> tuple[list[_Term], bool | None]:
        terms: dict[tuple[int, ...], _Term] = {}
        intercept: bool | None = None
        sign = "+"
        if self.at("+") or self.at("-"):
            sign = self.take().value
        while True:
            start = self.tok
            part = self.product()
            marker = _intercept_marker(part)
            if marker is not None:
                keep = marker if sign == "+" else not marker
                intercept = keep
            elif sign == "-":
                raise _Error(
                    "only '- 1' may be subtracted (it removes the intercept); to leave a "
                    "predictor out, do not list it",
                    start.pos,
                    self.toks[self.i - 1].end,
                )
            else:
                for t in part:
                    terms.setdefault(_identity(t), t)
                if len(terms) > MAX_TERMS:
                    raise _Error(
                        f"the formula has more than {MAX_TERMS:,} terms",
                        start.pos,
                        self.toks[self.i - 1].end,
                    )
            if self.at("+") or self.at("-"):
                sign = self.take().value
                continue
            return list(terms.values()), intercept

    def product(self) -> list[_Term]:
        left = self.colon()
        while self.at("*"):
            op = self.take()
            right = self.colon()
            _no_specials(left + right, op)
            _not_too_many(left, right, op)
            crossed = [a + b for a in left for b in right]
            left = _unique(left + right + crossed)
        return left

    def colon(self) -> list[_Term]:
        left = self.atom()
        while self.at(":"):
            op = self.take()
            right = self.atom()
            _no_specials(left + right, op)
            _not_too_many(left, right, op)
            left = _unique([a + b for a in left for b in right])
        return left

    def atom(self) -> list[_Term]:
        tok = self.tok
        if self.at("("):
            self.nest(self.take())
            terms, intercept = self.sum()
            self.depth -= 1
            self.expect(")", "')'")
            if intercept is not None:
                raise _Error("write '- 1' or '+ 0' outside parentheses", tok.pos, self.tok.pos)
            return terms
        if tok.kind == "number":
            self.take()
            if tok.value in ("0", "1"):
                return [(_Factor("intercept", name=tok.value, pos=tok.pos, end=tok.end),)]
            raise _Error(
                f"a number ({tok.value}) is not a term (0 or 1 is the intercept)", tok.pos, tok.end
            )
        if tok.kind == "quoted":  # `a column`: a name, never a call or a word
            self.take()
            return [(_Factor("column", tok.value, pos=tok.pos, end=tok.end),)]
        if tok.kind == "name":
            self.take()
            if tok.value == ".":
                raise _Error(
                    "'.' (every other column) is not supported; list the predictors",
                    tok.pos,
                    tok.end,
                )
            if self.at("("):
                call = self.call(tok)
                return [(_term_call(call),)]
            return [(_Factor("column", tok.value, pos=tok.pos, end=tok.end),)]
        if tok.kind == "end":
            raise _Error("a term is missing", tok.pos)
        if tok.kind == "string":
            raise _Error(
                "a quoted string is not a term; write a column name (`odd name` in backquotes)",
                tok.pos,
                tok.end,
            )
        raise _Error(f"unexpected {tok.value!r} where a term should be", tok.pos, tok.end)

    # calls and their arguments
    def call(self, name: _Tok) -> _Val:
        self.nest(self.expect("(", "'('"))
        args: list[tuple[str | None, _Val]] = []
        while not self.at(")"):
            key: str | None = None
            if self.tok.kind in ("name", "quoted", "string", "number") and self._next_is("="):
                key = self.take().value
                self.take()
            args.append((key, self.value()))
            if not self.at(","):
                break
            self.take()
        end = self.expect(")", f"',' or ')' in {name.value}(...)").end
        self.depth -= 1
        return _Val("call", None, name.pos, end, fn=name.value, args=tuple(args))

    def _next_is(self, op: str) -> bool:
        nxt = self.toks[self.i + 1]
        return nxt.kind == "op" and nxt.value == op

    def value(self) -> _Val:
        tok = self.tok
        if self.at("-") or self.at("+"):
            self.take()
            inner = self.value()
            if inner.kind != "number":
                raise _Error("a sign goes before a number", tok.pos, inner.end)
            v = -inner.value if tok.value == "-" else inner.value
            return _Val("number", v, tok.pos, inner.end)
        if tok.kind == "number":
            self.take()
            num = float(tok.value)
            return _Val("number", int(num) if _int_text(tok.value) else num, tok.pos, tok.end)
        if tok.kind == "string":
            self.take()
            return _Val("string", tok.value, tok.pos, tok.end)
        if tok.kind == "quoted":
            self.take()
            return _Val("name", tok.value, tok.pos, tok.end)
        if tok.kind == "name":
            self.take()
            if self.at("("):
                return self.call(tok)
            if tok.value in _WORDS:
                return _Val("bool", _WORDS[tok.value], tok.pos, tok.end)
            if tok.value == "Inf":
                return _Val("number", math.inf, tok.pos, tok.end)
            return _Val("name", tok.value, tok.pos, tok.end)
        if self.at("[") or self.at("{"):
            close = "]" if tok.value == "[" else "}"
            self.nest(self.take())
            items: list[Any] = []
            while not self.at(close):
                if close == "}":
                    key = self.value()
                    self.expect(":", "':' after a key in {...}")
                    items.append((key, self.value()))
                else:
                    items.append(self.value())
                if not self.at(","):
                    break
                self.take()
            end = self.expect(close, f"',' or {close!r}").end
            self.depth -= 1
            if close == "]":
                return _Val("list", tuple(items), tok.pos, end)
            return _Val("dict", tuple(items), tok.pos, end)
        found = "the end" if tok.kind == "end" else repr(tok.value)
        raise _Error(f"expected a value, found {found}", tok.pos, tok.end)


def _int_text(text: str) -> bool:
    return text.isdigit()


def _intercept_marker(part: list[_Term]) -> bool | None:
    if len(part) == 1 and len(part[0]) == 1 and part[0][0].kind == "intercept":
        return part[0][0].name == "1"
    return None


def _no_specials(terms: list[_Term], op: _Tok) -> None:
    for term in terms:
        for f in term:
            if f.kind != "column":
                what = "the intercept (0 or 1)" if f.kind == "intercept" else "an offset"
                raise _Error(f"{what} cannot be in a product ({op.value!r})", f.pos, f.end)


def _identity(term: _Term) -> tuple[int, ...]:
    """A term's identity: the positions of its pieces in the formula."""
    return tuple(f.pos for f in term)


def _unique(terms: list[_Term]) -> list[_Term]:
    """``terms`` without repeats (the same source pieces)."""
    return list({_identity(t): t for t in terms}.values())


def _not_too_many(left: list[_Term], right: list[_Term], op: _Tok) -> None:
    n = len(left) * len(right) + len(left) + len(right)
    if n > MAX_TERMS:
        raise _Error(
            f"the product expands to {n:,} terms, more than the {MAX_TERMS:,} allowed",
            op.pos,
            op.end,
        )


# -- interpreting calls ------------------------------------------------------------------------
_LEVEL_OPTIONS = ("base", "groups", "missing")


def _term_call(call: _Val) -> _Factor:
    fn = call.fn
    if fn in ("C", "factor", "as.factor", "levels", "relevel"):
        return _levels_call(call)
    if fn in ("ns", "ms"):
        return _spline_call(call)
    if fn in ("bands", "cut"):
        return _bands_call(call)
    if fn == "offset":
        return _offset_call(call)
    if fn == "fixed":
        return _fixed_call(call)
    if fn == "Q":
        return _Factor("column", _column(call), pos=call.pos, end=call.end)
    hint = {
        "bs": "a natural spline is ns(x, df), a monotone one ms(x, df, increasing)",
        "poly": "a curve is ns(x, df)",
        "log": "transform the column in the data",
        "I": "transform the column in the data",
        "interaction": "write a:b",
    }.get(fn, "")
    raise _Error(
        f"{fn}(...) is not a term smglm knows{'; ' + hint if hint else ''}", call.pos, call.end
    )


def _split_args(
    call: _Val, keys: tuple[str, ...], aliases: dict[str, str] | None = None
) -> tuple[list[_Val], dict[str, _Val]]:
    positional: list[_Val] = []
    named: dict[str, _Val] = {}
    aliases = aliases or {}
    for key, val in call.args:
        if key is None:
            positional.append(val)
            continue
        name = aliases.get(key, key)
        if name not in keys:
            raise _Error(
                f"{call.fn}() takes no argument {key!r}; it takes {list(keys) or 'none'}",
                val.pos,
                val.end,
            )
        if name in named:
            raise _Error(f"{call.fn}(): {name!r} is given twice", val.pos, val.end)
        named[name] = val
    return positional, named


def _column(call: _Val, allow_term: bool = False) -> str:
    """The column named by ``call``'s first argument."""
    if not call.args or call.args[0][0] is not None:
        raise _Error(f"{call.fn}() needs a column as its first argument", call.pos, call.end)
    val = call.args[0][1]
    if val.kind == "call" and val.fn == "Q":
        return _column(val)
    if call.fn == "Q" and val.kind == "string":
        return str(val.value)
    if val.kind != "name":
        raise _Error(f"{call.fn}() needs a column name first, not this", val.pos, val.end)
    return str(val.value)


def _level(val: _Val, what: str) -> str:
    if val.kind in ("name", "string"):
        return str(val.value)
    if val.kind == "number" and math.isfinite(val.value):
        v = val.value
        return str(int(v)) if float(v).is_integer() else str(v)
    raise _Error(f"{what} must be a level (a name, text or number)", val.pos, val.end)


def _levels_list(val: _Val, what: str) -> list[str]:
    if val.kind == "call" and val.fn == "c" and all(k is None for k, _ in val.args):
        return [_level(v, what) for _, v in val.args]
    if val.kind == "list":
        return [_level(v, what) for v in val.value]
    return [_level(val, what)]


def _level_options(call: _Val, named: dict[str, _Val]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if "base" in named:
        val = named["base"]
        if val.kind == "call" and val.fn == "Treatment":
            spec["base"] = _treatment(val)
        else:
            spec["base"] = _level(val, "base")
    if "missing" in named:
        val = named["missing"]
        if val.kind not in ("name", "string") or val.value != "level":
            raise _Error("missing takes one value: level", val.pos, val.end)
        spec["missing"] = "level"
    if "groups" in named:
        spec["groups"] = _groups(named["groups"])
    return spec


def _groups(val: _Val) -> dict[str, list[str]]:
    pairs: list[tuple[str, _Val]] = []
    if val.kind == "call" and val.fn in ("list", "c") and all(k is not None for k, _ in val.args):
        pairs = [(str(k), v) for k, v in val.args]
    elif val.kind == "dict":
        pairs = [(_level(k, "a group's name"), v) for k, v in val.value]
    else:
        raise _Error(
            "groups is list(name = c(level, ...), ...) or {name: [level, ...], ...}",
            val.pos,
            val.end,
        )
    out: dict[str, list[str]] = {}
    for name, members in pairs:
        if name in out:
            raise _Error(f"group {name!r} is given twice", members.pos, members.end)
        out[name] = _levels_list(members, f"a level of group {name!r}")
    return out


def _treatment(val: _Val) -> str:
    pos, named = _split_args(val, ("reference",), {"ref": "reference"})
    given = pos + list(named.values())
    if len(given) != 1:
        raise _Error("Treatment() takes one reference level", val.pos, val.end)
    return _level(given[0], "the reference level")


def _levels_call(call: _Val) -> _Factor:
    name = _column(call)
    keys = ("ref",) if call.fn == "relevel" else _LEVEL_OPTIONS
    positional, named = _split_args(
        call, keys, {"reference": "base", "ref": "base"} if call.fn != "relevel" else {}
    )
    if call.fn == "relevel":
        given = positional[1:] + ([named["ref"]] if "ref" in named else [])
        if len(given) != 1:
            raise _Error("relevel(x, ref) takes one reference level", call.pos, call.end)
        spec: dict[str, Any] = {"base": _level(given[0], "the reference level")}
    else:
        extra = positional[1:]
        if extra and "base" not in named and extra[0].kind == "call" and extra[0].fn == "Treatment":
            named["base"] = extra.pop(0)
        if extra:
            raise _Error(
                f"{call.fn}() takes the column and base=, groups=, missing=; got more",
                extra[0].pos,
                extra[0].end,
            )
        spec = _level_options(call, named)
    categorical = call.fn in ("C", "factor", "as.factor")
    return _Factor(
        "column", name, spec=spec or None, categorical=categorical, pos=call.pos, end=call.end
    )


def _numbers(val: _Val, what: str) -> list[float]:
    if val.kind == "call" and val.fn == "c" and all(k is None for k, _ in val.args):
        items = [v for _, v in val.args]
    elif val.kind == "list":
        items = list(val.value)
    else:
        items = [val]
    out = []
    for v in items:
        if v.kind != "number":
            raise _Error(f"{what} must be numbers", v.pos, v.end)
        out.append(float(v.value))
    return out


def _spline_call(call: _Val) -> _Factor:
    name = _column(call)
    positional, named = _split_args(
        call, ("df", "knots", "boundary", "monotone"), {"Boundary.knots": "boundary"}
    )
    spline: dict[str, Any] = {}
    for val in positional[1:]:
        if val.kind == "number" and "df" not in named:
            named["df"] = val
        elif val.kind in ("name", "string") and "monotone" not in named:
            named["monotone"] = val
        else:
            raise _Error(
                f"{call.fn}() takes the column, then df (a number) and, for ms, increasing or "
                "decreasing; name the others (knots=, boundary=)",
                val.pos,
                val.end,
            )
    if "df" in named:
        val = named["df"]
        if val.kind != "number" or not float(val.value).is_integer():
            raise _Error("df must be a whole number", val.pos, val.end)
        spline["df"] = int(val.value)
    if "knots" in named:
        spline["knots"] = _numbers(named["knots"], "knots")
    if "boundary" in named:
        bounds = _numbers(named["boundary"], "boundary")
        if len(bounds) != 2:
            raise _Error(
                "boundary is two numbers, c(low, high)",
                named["boundary"].pos,
                named["boundary"].end,
            )
        spline["boundary"] = bounds
    if "df" not in named and "knots" not in named:
        raise _Error(
            f"{call.fn}() needs df ({call.fn}(x, 5)) or knots ({call.fn}(x, knots = c(...)))",
            call.pos,
            call.end,
        )
    if "monotone" in named:
        val = named["monotone"]
        if val.kind not in ("name", "string") or val.value not in ("increasing", "decreasing"):
            raise _Error("monotone is increasing or decreasing", val.pos, val.end)
        spline["monotone"] = val.value
    elif call.fn == "ms":
        raise _Error("ms() needs a direction: increasing or decreasing", call.pos, call.end)
    return _Factor("column", name, spec={"spline": spline}, pos=call.pos, end=call.end)


def _bands_call(call: _Val) -> _Factor:
    name = _column(call)
    keys = ("breaks", "right", *_LEVEL_OPTIONS) if call.fn == "cut" else _LEVEL_OPTIONS
    positional, named = _split_args(call, keys)
    cuts: list[float] = []
    given = positional[1:] + ([named["breaks"]] if "breaks" in named else [])
    if not given:
        raise _Error(
            f"{call.fn}() needs the cut points, e.g. {call.fn}(x, 60, 80, 100)", call.pos, call.end
        )
    if call.fn == "cut" and len(given) > 1:
        raise _Error(
            "cut(x, c(...)) takes its cut points as one vector", given[1].pos, given[1].end
        )
    for val in given:
        cuts += _numbers(val, "cut points")
    if call.fn == "cut":
        right = named.get("right")
        if right is not None and not (right.kind == "bool" and right.value is False):
            raise _Error(
                "bands are [lower, upper): cut() takes right = FALSE only", right.pos, right.end
            )
        if cuts and cuts[0] == -math.inf:
            cuts = cuts[1:]
        if cuts and cuts[-1] == math.inf:
            cuts = cuts[:-1]
    spec: dict[str, Any] = {"bands": cuts, **_level_options(call, named)}
    return _Factor("column", name, spec=spec, pos=call.pos, end=call.end)


def _offset_call(call: _Val) -> _Factor:
    if len(call.args) != 1 or call.args[0][0] is not None:
        raise _Error(
            "offset() takes one column, or log(column) for an exposure", call.pos, call.end
        )
    val = call.args[0][1]
    if val.kind == "name":
        return _Factor("offset", str(val.value), pos=call.pos, end=call.end)
    if val.kind == "call" and val.fn == "log" and len(val.args) == 1:
        inner = val.args[0][1]
        if inner.kind == "name" and val.args[0][0] is None:
            return _Factor("exposure", str(inner.value), pos=call.pos, end=call.end)
    raise _Error("offset() takes a column, or log(column) for an exposure", val.pos, val.end)


def _fixed_call(call: _Val) -> _Factor:
    if not call.args or call.args[0][0] is not None:
        raise _Error("fixed() needs the term first: fixed(x, 0.1)", call.pos, call.end)
    head = call.args[0][1]
    if head.kind == "name":
        factor = _Factor("column", str(head.value), pos=head.pos, end=head.end)
    elif head.kind == "call":
        factor = _term_call(head)
        if factor.kind != "column" or factor.has_fixed:
            raise _Error("fixed() takes a predictor's term", head.pos, head.end)
    else:
        raise _Error("fixed() needs the term first: fixed(x, 0.1)", head.pos, head.end)
    rest = call.args[1:]
    value: Any
    if len(rest) == 1 and rest[0][0] is None and rest[0][1].kind == "number":
        value = float(rest[0][1].value)
    elif len(rest) == 1 and rest[0][0] is None:
        value = _relativities(rest[0][1])
    elif rest and all(k is not None for k, _ in rest):
        value = {}
        for k, v in rest:
            assert k is not None
            value[k] = _relativity(v, k)
    else:
        raise _Error(
            "fixed() takes the term and a coefficient (fixed(x, 0.1)) or relativities "
            "(fixed(area, A = 1.2, B = 1.35))",
            call.pos,
            call.end,
        )
    factor.fixed, factor.has_fixed = value, True
    factor.pos, factor.end = call.pos, call.end
    return factor


def _relativities(val: _Val) -> dict[str, float]:
    if val.kind == "call" and val.fn in ("c", "list") and all(k is not None for k, _ in val.args):
        return {str(k): _relativity(v, str(k)) for k, v in val.args}
    if val.kind == "dict":
        out = {}
        for k, v in val.value:
            level = _level(k, "a level")
            out[level] = _relativity(v, level)
        return out
    raise _Error("relativities are c(level = value, ...) or {level: value, ...}", val.pos, val.end)


def _relativity(val: _Val, level: str) -> float:
    if val.kind != "number":
        raise _Error(f"the relativity of {level!r} must be a number", val.pos, val.end)
    return float(val.value)


# -- the structure -----------------------------------------------------------------------------
@dataclass
class _Column:
    name: str
    spec: dict[str, Any] | None = None
    spec_at: _Factor | None = None
    categorical: bool = False
    fixed: Any = None
    has_fixed: bool = False


def parse_formula(text: str) -> dict[str, Any]:
    """The GLMConfig fields that ``text`` spells: ``target``, ``predictors`` and, when the
    formula says so, ``categorical``, ``terms``, ``interactions``, ``fixed``, ``exposure`` or
    ``offset``, ``fit_intercept: False``.

    Raises
    ------
    ConfigError
        Naming ``formula``, the offending piece and its position, and what is allowed.
    """
    if not isinstance(text, str):
        raise ConfigError(
            [
                Issue(
                    "formula",
                    f"must be a string such as 'y ~ a + b'; got {type(text).__name__}",
                    text,
                )
            ]
        )
    if len(text) > MAX_LENGTH:
        raise ConfigError(
            [
                Issue(
                    "formula",
                    f"is {len(text):,} characters long, more than the {MAX_LENGTH:,} allowed",
                    len(text),
                )
            ]
        )
    try:
        return _structure(text)
    except _Error as err:
        raise _issue(text, err) from None


def _structure(text: str) -> dict[str, Any]:
    target, terms, intercept = _Parser(text).formula()
    columns: dict[str, _Column] = {}
    interactions: list[list[str]] = []
    seen_pairs: set[frozenset[str]] = set()
    exposure: _Factor | None = None
    offset: _Factor | None = None

    def use(f: _Factor) -> None:
        col = columns.setdefault(f.name, _Column(f.name))
        if f.spec is not None:
            if col.spec is not None and col.spec != f.spec:
                assert col.spec_at is not None
                first = text[col.spec_at.pos : col.spec_at.end]
                raise _Error(
                    f"{f.name!r} enters two ways ({first!r} and this); give one", f.pos, f.end
                )
            col.spec, col.spec_at = f.spec, f
        col.categorical |= f.categorical
        if f.has_fixed:
            if col.has_fixed and col.fixed != f.fixed:
                raise _Error(f"{f.name!r} is fixed twice", f.pos, f.end)
            col.fixed, col.has_fixed = f.fixed, True

    for term in terms:
        if len(term) == 1:
            f = term[0]
            if f.kind in ("exposure", "offset"):
                if exposure is not None or offset is not None:
                    raise _Error("a second offset; give one offset(...)", f.pos, f.end)
                if f.kind == "exposure":
                    exposure = f
                else:
                    offset = f
                continue
            use(f)
            continue
        piece = ":".join(text[f.pos : f.end] for f in term)
        if len(term) > 2:
            raise _Error(
                f"{piece!r} is a {len(term)}-way interaction; smglm fits pairs (a:b)",
                term[0].pos,
                term[-1].end,
            )
        a, b = term
        if a.name == b.name:
            raise _Error(
                f"{piece!r}: a predictor cannot interact with itself (a spline gives a curve)",
                a.pos,
                b.end,
            )
        use(a)
        use(b)
        if frozenset((a.name, b.name)) not in seen_pairs:
            seen_pairs.add(frozenset((a.name, b.name)))
            interactions.append([a.name, b.name])

    out: dict[str, Any] = {"target": target, "predictors": list(columns)}
    categorical = [c.name for c in columns.values() if c.categorical]
    if categorical:
        out["categorical"] = categorical
    specs = {c.name: c.spec for c in columns.values() if c.spec}
    if specs:
        out["terms"] = specs
    if interactions:
        out["interactions"] = interactions
    fixed = {c.name: c.fixed for c in columns.values() if c.has_fixed}
    if fixed:
        out["fixed"] = fixed
    if exposure is not None:
        out["exposure"] = exposure.name
    if offset is not None:
        out["offset"] = offset.name
    if intercept is False:
        out["fit_intercept"] = False
    return out


def expand_formula(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (GLMConfig fields) with its ``formula`` replaced by the fields it spells.

    A field the formula sets may not be given beside it (``fixed`` may, when the formula has
    no ``fixed(...)``); that is a ConfigError naming ``formula`` and the fields.
    """
    text = data.get("formula")
    rest = {k: v for k, v in data.items() if k != "formula"}
    if text is None:
        return rest
    spelled = parse_formula(text)
    clash = [
        k for k in (*FORMULA_FIELDS, "fixed") if k in rest and (k != "fixed" or "fixed" in spelled)
    ]
    if clash:
        raise ConfigError(
            [
                Issue(
                    "formula",
                    f"the formula {_excerpt(text)!r} gives the model's columns; remove "
                    f"{clash} (the formula sets them) or write the model without a formula",
                    clash,
                )
            ]
        )
    return {**spelled, **rest}


# -- writing a formula -------------------------------------------------------------------------
def _name(col: str) -> str:
    if _PLAIN.match(col) and col not in ("TRUE", "FALSE", "True", "False", "Inf"):
        return col
    if "`" not in col:
        return f"`{col}`"
    return f"Q({_text(col)})"


def _text(value: str) -> str:
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(f"{value!r} has both kinds of quote; a formula cannot write it")


def _num(value: float) -> str:
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _vector(values: list[float]) -> str:
    return "c(" + ", ".join(_num(v) for v in values) + ")"


def _options(spec: Any) -> list[str]:
    out = []
    if spec.base is not None:
        out.append(f"base = {_text(spec.base)}")
    if spec.groups:
        groups = ", ".join(
            f"{_key(g)} = c({', '.join(_text(m) for m in members)})"
            for g, members in spec.groups.items()
        )
        out.append(f"groups = list({groups})")
    if spec.missing == "level":
        out.append("missing = level")
    return out


def _key(name: str) -> str:
    return name if _PLAIN.match(name) and name not in _WORDS else _text(name)


def _main_term(col: str, spec: Any, categorical: bool) -> str:
    name = _name(col)
    if spec is None:
        return f"C({name})" if categorical else name
    if spec.spline is not None:
        s = spline = spec.spline
        args = [name]
        if s.df is not None:
            args.append(str(s.df))
        if s.monotone is not None:
            args.append(s.monotone)
        if s.knots is not None:
            args.append(f"knots = {_vector(s.knots)}")
        if s.boundary is not None:
            args.append(f"boundary = {_vector(list(spline.boundary))}")
        return f"{'ms' if s.monotone else 'ns'}({', '.join(args)})"
    options = _options(spec)
    if spec.bands is not None:
        return f"bands({', '.join([name, *(_num(c) for c in spec.bands), *options])})"
    if categorical:
        return f"C({', '.join([name, *options])})"
    if options:
        return f"levels({', '.join([name, *options])})"
    return name


def formula_text(config: Any) -> str:
    """The formula that spells ``config``'s model (a :class:`~smglm.config.GLMConfig`):
    target, predictors with their terms, interactions, fixed terms, the offset or exposure,
    ``- 1`` without an intercept. ``GLMConfig.from_dict({"formula": text, ...})`` with the
    config's other fields gives the config back (with ``categorical`` in predictor order)."""
    parts: list[str] = []
    categorical = set(config.categorical)
    for col in config.predictors:
        main = _main_term(col, config.terms.get(col), col in categorical)
        if col in config.fixed:
            value = config.fixed[col]
            if isinstance(value, dict):
                rel = ", ".join(f"{_key(k)} = {_num(v)}" for k, v in value.items())
                main = f"fixed({main}, {rel})"
            else:
                main = f"fixed({main}, {_num(value)})"
        parts.append(main)
    parts += [f"{_name(a)}:{_name(b)}" for a, b in config.interactions]
    if config.exposure:
        parts.append(f"offset(log({_name(config.exposure)}))")
    if config.offset:
        parts.append(f"offset({_name(config.offset)})")
    rhs = " + ".join(parts) if parts else "1"
    if not config.fit_intercept:
        rhs += " - 1"
    return f"{_name(config.target)} ~ {rhs}"
