"""``%sm_config``: show the notebook defaults, set them (``key=value``) or unset them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smglm.errors import ConfigError, Issue
from smglm.glm.report.render import RichView, html_table, text_table

if TYPE_CHECKING:
    from smglm.notebook.settings import Settings

__all__ = ["SettingsView", "parse_assignments", "run"]


class SettingsView(RichView):
    """Every setting with its value, where the value comes from, and what it does."""

    def __init__(self, settings: Settings, path: str) -> None:
        self.settings = settings
        self.path = path

    @property
    def rows(self) -> list[list[str]]:
        from smglm.notebook.settings import KEYS

        out = []
        for key, setting in KEYS.items():
            value = self.settings.values.get(key)
            source = self.settings.sources.get(key, "default")
            out.append([key, "" if value is None else str(value), source, setting.doc])
        return out

    def __repr__(self) -> str:
        return f"SettingsView({self.settings.values!r})"

    def to_html(self) -> str:
        table = html_table(["setting", "value", "from", "meaning"], self.rows)
        return table + f"<p style='font-size:smaller'>%sm_config key=value saves to {self.path}</p>"

    def to_text(self) -> str:
        return text_table(["setting", "value", "from", "meaning"], self.rows)


def parse_assignments(tokens: list[str]) -> dict[str, str]:
    """``["a=1", "b=x y"]`` -> ``{"a": "1", "b": "x y"}``; anything else is a ConfigError."""
    out = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                [
                    Issue(
                        "%sm_config",
                        f"{token!r} is not key=value; e.g. %sm_config instance_type=ml.m5.2xlarge",
                        token,
                    )
                ]
            )
        out[key.strip()] = value.strip()
    return out


def run(tokens: list[str], unset: list[str] | None = None) -> SettingsView:
    """Set the ``key=value`` tokens (an empty value unsets), unset ``unset``; show the result."""
    from smglm.notebook import settings as st

    assignments = parse_assignments(tokens)
    to_unset = list(unset or []) + [k for k, v in assignments.items() if v == ""]
    to_set = {k: v for k, v in assignments.items() if v != ""}
    if to_set:
        st.set_values(to_set)
    if to_unset:
        st.unset_values(to_unset)
    return SettingsView(st.load_settings(), str(st.config_file()))
