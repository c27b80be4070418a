"""The base of smglm's config models: frozen pydantic models whose errors become ConfigError.

pydantic gives field paths, a JSON round-trip and a JSON Schema; this module turns its
validation errors into :class:`~smglm.errors.ConfigError` issues that name the field, the value
received and what is allowed, with a did-you-mean for misspelt names and choices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from smglm.errors import ConfigError, Issue, did_you_mean

__all__ = ["ConfigModel", "read_mapping"]

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
        """Load from a YAML or JSON file."""
        return cls.from_dict(read_mapping(path), source=str(path))

    @classmethod
    def from_yaml(cls: type[M], text: str, *, source: str | None = None) -> M:
        """Parse YAML (or JSON, which is YAML) text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                [Issue("", f"not valid YAML: {exc}".replace("\n", " "))], source=source
            ) from None
        return cls.from_dict({} if data is None else data, source=source)

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        """Parse JSON text (what the container and S3 see)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([Issue("", f"not valid JSON: {exc}")]) from None
        return cls.from_dict(data)

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
    """Read a YAML or JSON file, with a clear error if it is missing or unparsable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [Issue("", f"cannot read config file {str(p)!r}: {exc.strerror or exc}")]
        ) from None
    try:
        return json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        msg = str(exc).replace("\n", " ")
        raise ConfigError([Issue("", f"cannot parse {str(p)!r}: {msg}")]) from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
                path = ".".join(p for p in (field, inner.field) if p)
                issues.append(Issue(path or "config", inner.message, inner.value))
            continue
        elif kind == "value_error":
            msg = str(ctx.get("error", err.get("msg", "")))
        else:
            msg = f"{err.get('msg', 'invalid')}; got {_short(value)}"
        issues.append(Issue(field or "config", msg, value))
    return issues
