"""Two parts of the form: the predictor picker (search + multi-select) and the bounds editor."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w

from smglm.glm.report.render import esc
from smglm.notebook.form_logic import filter_options

__all__ = ["BoundsEditor", "PredictorPicker"]

Bounds = dict[str, tuple[float | None, float | None]]


class PredictorPicker(w.VBox):
    """A search box over a multi-select; choices hidden by the search stay chosen.

    ``selected`` is the chosen columns in data order; ``on_change()`` is called when the user
    changes it (not when the form sets it from code).
    """

    def __init__(self, on_change: Callable[[], Any], *, label_width: str = "110px") -> None:
        self.columns: list[str] = []
        self.selected: list[str] = []
        self._on_change = on_change
        self._muted = False
        self.search = w.Text(
            description="predictors",
            placeholder="filter...",
            style={"description_width": label_width},
            layout=w.Layout(width="420px"),
        )
        self.select = w.SelectMultiple(rows=8, layout=w.Layout(width="420px", margin="0 0 0 118px"))
        self.search.observe(lambda _change: self._show(), names="value")
        self.select.observe(self._picked, names="value")
        super().__init__(children=[self.search, self.select])

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        muted, self._muted = self._muted, True
        try:
            yield
        finally:
            self._muted = muted

    def set(self, columns: list[str], selected: list[str]) -> None:
        """Offer ``columns`` with ``selected`` chosen (those not offered are dropped)."""
        self.columns = list(columns)
        chosen = set(selected)
        self.selected = [c for c in self.columns if c in chosen]
        self._show()

    def _show(self) -> None:
        options = filter_options(self.columns, self.search.value)
        with self._quiet():
            self.select.options = options
            self.select.value = tuple(p for p in self.selected if p in options)

    def _picked(self, change: dict[str, Any]) -> None:
        if self._muted:
            return
        visible = set(self.select.options)
        chosen = set(change["new"]) | {p for p in self.selected if p not in visible}
        self.selected = [p for p in self.columns if p in chosen]
        self._on_change()


def _parse(text: str) -> float | None:
    """A bound typed in a box: a number, or empty for none."""
    text = text.strip()
    try:
        return float(text) if text else None
    except ValueError:
        raise ValueError(f"bounds must be numbers (or empty for none); got {text!r}") from None


class BoundsEditor(w.VBox):
    """Bounds for the chosen predictors: pick a term, type lower/upper (empty: none), set.

    ``bounds`` maps a term to ``(lower, upper)``; ``on_change()`` is called after set/remove.
    """

    def __init__(self, on_change: Callable[[], Any], *, label_width: str = "110px") -> None:
        self.bounds: Bounds = {}
        self._on_change = on_change
        self.term = w.Dropdown(
            description="bound",
            style={"description_width": label_width},
            layout=w.Layout(width="260px"),
        )
        self.lower = w.Text(placeholder="lower", layout=w.Layout(width="80px"))
        self.upper = w.Text(placeholder="upper", layout=w.Layout(width="80px"))
        self.add = w.Button(description="set", layout=w.Layout(width="50px"))
        self.remove = w.Button(description="remove", layout=w.Layout(width="70px"))
        self.table = w.HTML()
        self.add.on_click(self._add)
        self.remove.on_click(self._remove)
        row = w.HBox([self.term, self.lower, self.upper, self.add, self.remove])
        super().__init__(children=[row, self.table])

    def show(self, terms: list[str]) -> None:
        """Offer ``terms`` (the chosen predictors) and list their bounds."""
        self.term.options = list(terms)
        rows = "".join(
            f"<tr><td>{esc(t)}</td><td>{esc(lo)}</td><td>{esc(hi)}</td></tr>"
            for t, (lo, hi) in self.bounds.items()
            if t in terms
        )
        head = "<tr><th>term</th><th>lower</th><th>upper</th></tr>"
        self.table.value = f"<table>{head}{rows}</table>" if rows else ""

    def _add(self, _button: Any = None) -> None:
        try:
            pair = (_parse(self.lower.value), _parse(self.upper.value))
        except ValueError as exc:
            self.table.value = f"<span style='color:#cf222e'>{esc(exc)}</span>"
            return
        if self.term.value:
            self.bounds[self.term.value] = pair
            self._on_change()

    def _remove(self, _button: Any = None) -> None:
        self.bounds.pop(self.term.value, None)
        self._on_change()
