"""The base of smglm's config models: frozen pydantic models whose errors become ConfigError.

pydantic gives field paths, a JSON round-trip and a JSON Schema; this module turns its
validation errors into :class:`~smglm.errors.ConfigError` issues that name the field, the value
received and what is allowed, with a did-you-mean for misspelt names and choices.

Reading a config is bounded in time and memory: a file or text over
:data:`MAX_CONFIG_BYTES`, a document that expands (YAML aliases included) to more than
:data:`MAX_CONFIG_NODES` values or nests deeper than :data:`MAX_CONFIG_DEPTH`, and duplicate
keys are refused with a :class:`~smglm.errors.ConfigError` (:func:`parse_mapping`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from smglm.errors import ConfigError, Issue, did_you_mean, short_repr

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_NODES",
    "ConfigModel",
    "parse_mapping",
    "read_mapping",
]

#: The largest config file or text read (bytes of UTF-8): a GLMConfig with a thousand
#: predictors and bounds on each is about 60 kB.
MAX_CONFIG_BYTES = 1_000_000
#: The most values (scalars, lists and mappings, YAML aliases counted once per use) a config
#: document may hold.
MAX_CONFIG_NODES = 100_000
#: The deepest nesting of lists and mappings a config document may have.
MAX_CONFIG_DEPTH = 32

M = TypeVar("M", bound="ConfigModel")


class ConfigModel(BaseModel):
    """Inert, frozen configuration: unknown fields are errors; errors are ConfigError."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(issues_from_validation(exc, type(self))) from None
        issues = self._cross_field_issues()
        if issues:
            raise ConfigError(issues)

    def _cross_field_issues(self) -> list[Issue]:
        """Rules that involve several fields; subclasses override. Runs after field checks."""
        return []

    # -- loading and saving ----------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[M], data: Any, *, source: str | None = None) -> M:
        """Build from a mapping (e.g. parsed YAML or JSON)."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ConfigError(
                [
                    Issue(
                        "",
                        f"a {cls.__name__} must be a mapping of field names to values; "
                        f"got {type(data).__name__} {_short(data)}",
                        data,
                    )
                ],
                source=source,
            )
        try:
            return cls(**data)
        except ConfigError as exc:
            if source:
                raise ConfigError(exc.issues, source=source) from None
            raise

    @classmethod
    def from_file(cls: type[M], path: str | Path) -> M:
        """Load from a YAML or JSON file (an empty YAML file is an empty mapping, as in
        :meth:`from_yaml`)."""
        data = read_mapping(path)
        return cls.from_dict({} if data is None else data, source=str(path))

    @classmethod
    def from_yaml(cls: type[M], text: str, *, source: str | None = None) -> M:
        """Parse YAML (or JSON, which is YAML) text; see :func:`parse_mapping` for the limits."""
        data = parse_mapping(text, "yaml", source=source)
        return cls.from_dict({} if data is None else data, source=source)

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        """Parse JSON text (what the container and S3 see)."""
        return cls.from_dict(parse_mapping(text, "json"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of every field."""
        return self.model_dump(mode="json")

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text, encoding="utf-8")
        return path

    def __repr_args__(self) -> Any:
        # constructor-like repr that leaves out fields at their default (rich's repr habit)
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if field.is_required() or value != field.get_default(call_default_factory=True):
                yield name, value


def read_mapping(path: str | Path) -> Any:
    """Read a YAML or JSON file (``.json``: JSON, else YAML), with a clear error if it is
    missing, too large or unparsable; see :func:`parse_mapping` for the limits."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [Issue("", f"cannot read config file {str(p)!r}: {exc.strerror or exc}")]
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [Issue("", _too_large(f"config file {str(p)!r}", len(raw), at_least=True))]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                Issue(
                    "",
                    f"config file {str(p)!r} is not UTF-8 text: {exc.reason} at byte {exc.start}",
                )
            ]
        ) from None
    return parse_mapping(
        text, "json" if p.suffix.lower() == ".json" else "yaml", where=repr(str(p))
    )


def _too_large(what: str, size: int, *, at_least: bool = False) -> str:
    """``at_least``: only the first ``size`` bytes were read (a file)."""
    amount = "more than" if at_least else f"{size:,} bytes, more than"
    return (
        f"{what} is too large: {amount} the {MAX_CONFIG_BYTES:,} bytes a config may have; a "
        "config names columns and settings, not data"
    )


def parse_mapping(
    text: str, syntax: Literal["yaml", "json"], *, source: str | None = None, where: str = ""
) -> Any:
    """Parse config text (YAML or JSON), bounded in time and memory.

    Refused with a :class:`~smglm.errors.ConfigError`: text over :data:`MAX_CONFIG_BYTES`;
    syntax errors (with the line and column); a document of more than
    :data:`MAX_CONFIG_NODES` values once YAML aliases are expanded (an alias bomb), or nested
    deeper than :data:`MAX_CONFIG_DEPTH`; a key given twice in one mapping (YAML and JSON
    parsers otherwise keep the last one silently); YAML tags other than the standard ones.
    A leading byte-order mark is ignored.
    """
    label = where or "the config"
    if len(text) > MAX_CONFIG_BYTES or len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        size = len(text.encode("utf-8", "replace"))
        raise ConfigError([Issue("", _too_large(label, size))], source=source)
    text = text.removeprefix("\ufeff")
    try:
        if syntax == "json":
            data = json.loads(text, object_pairs_hook=_json_object)
            _check_shape(data)
        else:
            data = _load_yaml(text)
    except _Refused as exc:
        raise ConfigError([Issue("", f"cannot load {label}: {exc}")], source=source) from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        msg = str(exc).replace("\n", " ")
        if "\t" in text and ("tab" in msg or "cannot start any token" in msg):
            msg += " (YAML indents with spaces, not tabs)"
        kind = "YAML" if syntax == "yaml" else "JSON"
        raise ConfigError(
            [Issue("", f"cannot parse {label}: not valid {kind}: {msg}")], source=source
        ) from None
    except RecursionError:  # json's C decoder, before _check_shape could count
        raise ConfigError(
            [
                Issue(
                    "",
                    f"cannot load {label}: the document nests deeper than "
                    f"{MAX_CONFIG_DEPTH} levels",
                )
            ],
            source=source,
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError([Issue("", f"cannot parse {label}: {msg}")], source=source) from None
    return data


class _Refused(ValueError):
    """A config document over the value or depth limit, or with a key given twice."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} is given twice in one mapping; give it once")
        out[key] = value
    return out


def _check_shape(data: Any) -> None:
    """JSON has no aliases: count the values and the depth of the parsed document."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise _Refused(f"the document holds more than {MAX_CONFIG_NODES:,} values")
        if depth > MAX_CONFIG_DEPTH:
            raise _Refused(f"the document nests deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


#: libyaml's parser when PyYAML has it (about 10x faster than the pure-Python one).
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _BoundedLoader(_SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if (
                    isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"
                ):
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        mark = key_node.start_mark
                        raise _Refused(
                            f"key {key_node.value!r} is given twice in one mapping (line "
                            f"{mark.line + 1}); give it once"
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    """Measure the document from its parse events, then load it.

    An alias in YAML is the anchored node itself: nine aliases nine levels deep make a few
    hundred bytes that stand for 9**9 values when the document is walked (validated,
    printed). The events (no recursion, no expansion) give each anchor's expanded size once,
    so the document's expanded size and depth are known in one pass before anything is
    built; an anchor used inside itself (a cycle) is refused too.
    """
    _measure(yaml.parse(text, Loader=_SafeLoader))
    return yaml.load(text, Loader=_BoundedLoader)  # a safe loader


def _measure(events: Any) -> None:
    sizes: dict[str, int] = {}  # anchor -> the values it stands for
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # open collections: [anchor, values so far]
    root = [0]

    def add(n: int) -> None:
        top = stack[-1] if stack else None
        total = (top[1] if top else root[0]) + n
        if total > MAX_CONFIG_NODES:
            raise _Refused(
                f"the document expands to more than {MAX_CONFIG_NODES:,} values "
                "(YAML aliases count once per use)"
            )
        if top:
            top[1] = total
        else:
            root[0] = total

    for event in events:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= MAX_CONFIG_DEPTH:
                raise _Refused(f"the document nests deeper than {MAX_CONFIG_DEPTH} levels")
            stack.append([event.anchor, 1])
            if event.anchor:
                open_anchors.add(event.anchor)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
                open_anchors.discard(anchor)
            add(size)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                sizes[event.anchor] = 1
            add(1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise _Refused(f"the alias *{event.anchor} is used inside its own anchor (a cycle)")
            add(sizes.get(event.anchor or "", 1))  # an undefined alias: the loader says so


def _short(value: Any, limit: int = 60) -> str:
    return short_repr(value, limit)


def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model class that holds the field at ``loc`` (for did-you-mean on fields)."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *get_args(ann)]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _literal_choices(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    holder = _model_at(model, loc)
    if holder is None:
        return ()
    field = holder.model_fields.get(str(loc[-1]))
    if field is None:
        return ()
    stack = [field.annotation]
    while stack:
        ann = stack.pop()
        if get_origin(ann) is Literal:
            return get_args(ann)
        stack.extend(get_args(ann))
    return ()


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "tuple_type": "a pair [lower, upper]",
    "finite_number": "a finite number",
}


def issues_from_validation(exc: ValidationError, model: type[BaseModel]) -> list[Issue]:
    """Turn pydantic's errors into issues that name the field, the value and what is allowed."""
    issues: list[Issue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        # pydantic reports a union member's name as an extra loc part (e.g. 'float'): drop it
        loc = tuple(p for p in loc if p not in ("float", "int", "str", "none", "bool"))
        field = _loc_str(loc)
        value = err.get("input")
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            holder = _model_at(model, loc)
            known = list(holder.model_fields) if holder else []
            name = str(loc[-1]) if loc else field
            msg = f"unknown field {name!r}; allowed fields are {known}.{did_you_mean(name, known)}"
        elif kind == "missing":
            msg = "is required but missing"
        elif kind == "literal_error":
            choices = _literal_choices(model, loc)
            msg = (
                f"{_short(value)} is not allowed; choose one of {list(choices)}."
                f"{did_you_mean(value, [c for c in choices if isinstance(c, str)])}"
            )
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            op = {
                "greater_than_equal": ">=",
                "greater_than": ">",
                "less_than_equal": "<=",
                "less_than": "<",
            }[kind]
            bound = next(iter(ctx.values()), "?")
            msg = f"must be {op} {bound}; got {_short(value)}"
        elif kind in _TYPE_WORDS:
            msg = f"must be {_TYPE_WORDS[kind]}; got {_short(value)} ({type(value).__name__})"
        elif kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
            # a nested ConfigModel validated itself: keep its issues, under this field's path
            for inner in ctx["error"].issues:
                if inner.field.startswith("["):  # an item of this field: interactions[0]
                    path = field + inner.field
                else:
                    path = ".".join(p for p in (field, inner.field) if p)
                issues.append(Issue(path or "config", inner.message, inner.value))
            continue
        elif kind == "value_error":
            msg = str(ctx.get("error", err.get("msg", "")))
        else:
            msg = f"{err.get('msg', 'invalid')}; got {_short(value)}"
        issues.append(Issue(field or "config", msg, value))
    return issues
