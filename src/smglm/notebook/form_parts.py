"""Parts of the form: the predictor picker (search + multi-select), the bounds editor, the
term options (spline, bands, groups, base, missing level, fixed), the interactions picker and
the penalty search."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import ipywidgets as w

from smglm.glm.report.render import esc
from smglm.notebook.form_logic import FOLD_KINDS, TERM_KINDS, TermOptions, filter_options

__all__ = ["BoundsEditor", "InteractionPicker", "PredictorPicker", "SearchPanel", "TermEditor"]

Bounds = dict[str, tuple[float | None, float | None]]


class PredictorPicker(w.VBox):
    """A search box over a multi-select; choices hidden by the search stay chosen.

    ``selected`` is the chosen columns: in the order the form set them (a config's order), then
    those the user adds, in data order; ``on_change()`` is called when the user changes it (not
    when the form sets it from code).
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
        offered = set(self.columns)
        self.selected = list(dict.fromkeys(c for c in selected if c in offered))
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
        kept = [p for p in self.selected if p in chosen]
        self.selected = kept + [p for p in self.columns if p in chosen and p not in kept]
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


def _summary(options: TermOptions) -> str:
    """One line for the term options' table: what is not the default."""
    parts = []
    if options.kind == "spline":
        how = f"df {options.df}" if options.df else f"knots {options.knots or '?'}"
        parts.append(f"{options.monotone + ' ' if options.monotone else ''}spline, {how}")
    elif options.kind == "bands":
        parts.append(f"bands {options.bands or '?'}")
    if options.kind != "spline":
        if options.groups.strip():
            parts.append(f"groups {options.groups}")
        if options.base.strip():
            parts.append(f"base {options.base}")
        if options.missing_level:
            parts.append("missing as a level")
    if options.fixed.strip():
        parts.append(f"fixed {options.fixed}")
    return "; ".join(parts)


class TermEditor(w.VBox):
    """How each chosen predictor enters the model: pick the predictor, then its kind (as is,
    spline, bands) and options; a table lists the predictors whose options are set.

    ``options`` maps a predictor to its :class:`~smglm.notebook.form_logic.TermOptions`;
    ``on_change()`` is called when the user changes them (not when the form sets them).
    ``levels(column, options)`` gives the base's choices (the column's levels or bands).
    """

    def __init__(
        self,
        on_change: Callable[[], Any],
        levels: Callable[[str, TermOptions], list[str]] | None = None,
        *,
        label_width: str = "110px",
    ) -> None:
        self.options: dict[str, TermOptions] = {}
        self._on_change = on_change
        self._levels = levels or (lambda _column, _options: [])
        self._muted = False
        desc = {"description_width": label_width}
        self.column = w.Dropdown(description="term of", style=desc, layout=w.Layout(width="420px"))
        self.kind = w.ToggleButtons(options=TERM_KINDS, description="enters", style=desc)
        self.df = w.BoundedIntText(
            value=0,
            min=0,
            max=30,
            description="spline df",
            style=desc,
            layout=w.Layout(width="200px"),
        )
        self.knots = w.Text(
            placeholder="or knots: 25, 35, 50",
            continuous_update=False,
            layout=w.Layout(width="210px"),
        )
        self.monotone = w.Dropdown(
            options=[
                ("(any shape)", ""),
                ("increasing", "increasing"),
                ("decreasing", "decreasing"),
            ],
            layout=w.Layout(width="130px"),
        )
        self.bands = w.Text(
            description="cut points",
            placeholder="60, 80, 100 (bands are [lower, upper))",
            continuous_update=False,
            style=desc,
            layout=w.Layout(width="420px"),
        )
        self.groups = w.Text(
            description="groups",
            placeholder="north: R01, R02; south: R04",
            continuous_update=False,
            style=desc,
            layout=w.Layout(width="420px"),
        )
        self.base = w.Combobox(
            description="base level",
            placeholder="(the level with the most exposure)",
            ensure_option=False,
            continuous_update=False,
            style=desc,
            layout=w.Layout(width="420px"),
        )
        self.missing = w.Checkbox(description="missing values as a level", indent=False)
        self.fixed = w.Text(
            description="fixed",
            placeholder="coefficient 0.09, or relativities A: 1.2, B: 1.35",
            continuous_update=False,
            style=desc,
            layout=w.Layout(width="420px"),
        )
        self.clear = w.Button(description="clear", layout=w.Layout(width="60px"))
        self.table = w.HTML()
        self.spline_row = w.HBox([self.df, self.knots, self.monotone])
        self.levels_row = w.VBox(
            [
                self.groups,
                self.base,
                w.HBox([w.Label(layout=w.Layout(width="118px")), self.missing]),
            ]
        )
        self.column.observe(lambda _change: self._load(), names="value")
        for widget in (
            self.kind, self.df, self.knots, self.monotone, self.bands, self.groups, self.base,
            self.missing, self.fixed,
        ):  # fmt: skip
            widget.observe(self._edited, names="value")
        self.clear.on_click(self._clear)
        super().__init__(
            children=[
                w.HBox([self.column, self.clear]), self.kind, self.spline_row, self.bands,
                self.levels_row, self.fixed, self.table,
            ]
        )  # fmt: skip

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        muted, self._muted = self._muted, True
        try:
            yield
        finally:
            self._muted = muted

    def show(self, columns: list[str]) -> None:
        """Offer ``columns`` (the chosen predictors) and list their options."""
        with self._quiet():
            current = self.column.value
            self.column.options = list(columns)
            if current in columns:
                self.column.value = current
        self._load()
        rows = "".join(
            f"<tr><td>{esc(c)}</td><td>{esc(_summary(self.options[c]))}</td></tr>"
            for c in columns
            if c in self.options and not self.options[c].is_default
        )
        head = "<tr><th>predictor</th><th>enters</th></tr>"
        self.table.value = f"<table>{head}{rows}</table>" if rows else ""

    def _current(self) -> TermOptions:
        return self.options.get(self.column.value or "", TermOptions())

    def _load(self) -> None:
        """The boxes show the chosen predictor's options."""
        options = self._current()
        with self._quiet():
            self.kind.value = options.kind
            self.df.value = options.df
            self.knots.value = options.knots
            self.monotone.value = options.monotone
            self.bands.value = options.bands
            self.groups.value = options.groups
            self.base.options = self._levels(self.column.value or "", options)
            self.base.value = options.base
            self.missing.value = options.missing_level
            self.fixed.value = options.fixed
        self._visibility(options.kind)

    def _visibility(self, kind: str) -> None:
        self.spline_row.layout.display = "" if kind == "spline" else "none"
        self.bands.layout.display = "" if kind == "bands" else "none"
        self.levels_row.layout.display = "none" if kind == "spline" else ""

    def _edited(self, _change: dict[str, Any]) -> None:
        if self._muted or not self.column.value:
            return
        options = replace(
            self._current(),
            kind=self.kind.value,
            df=int(self.df.value),
            knots=self.knots.value,
            monotone=self.monotone.value,
            bands=self.bands.value,
            groups=self.groups.value,
            base=self.base.value,
            missing_level=bool(self.missing.value),
            fixed=self.fixed.value,
        )
        self.options[self.column.value] = options
        self._visibility(options.kind)
        with self._quiet():
            self.base.options = self._levels(self.column.value, options)
        self._on_change()

    def _clear(self, _button: Any = None) -> None:
        self.options.pop(self.column.value or "", None)
        self._load()
        self._on_change()


class InteractionPicker(w.VBox):
    """Pairs of chosen predictors whose effects combine: pick two, add; pick a pair, remove.

    ``pairs`` is the list of pairs; ``on_change()`` is called after add/remove.
    """

    def __init__(self, on_change: Callable[[], Any], *, label_width: str = "110px") -> None:
        self.pairs: list[tuple[str, str]] = []
        self._on_change = on_change
        self.first = w.Dropdown(
            description="interaction",
            style={"description_width": label_width},
            layout=w.Layout(width="260px"),
        )
        self.second = w.Dropdown(layout=w.Layout(width="150px"))
        self.add = w.Button(description="add", layout=w.Layout(width="50px"))
        self.listed = w.Select(rows=3, layout=w.Layout(width="300px", margin="0 0 0 118px"))
        self.remove = w.Button(description="remove", layout=w.Layout(width="70px"))
        self.add.on_click(self._add)
        self.remove.on_click(self._remove)
        super().__init__(
            children=[
                w.HBox([self.first, w.Label("\u00d7"), self.second, self.add]),
                w.HBox([self.listed, self.remove]),
            ]
        )

    def show(self, columns: list[str]) -> None:
        """Offer ``columns`` (the chosen predictors); list the pairs of them."""
        self.first.options = list(columns)
        self.second.options = list(columns)
        if len(columns) > 1 and self.second.value == self.first.value:
            self.second.value = columns[1]
        chosen = set(columns)
        self.listed.options = [
            (f"{a} \u00d7 {b}", (a, b)) for a, b in self.pairs if a in chosen and b in chosen
        ]

    def _add(self, _button: Any = None) -> None:
        pair = (self.first.value, self.second.value)
        if pair[0] and pair[1] and pair not in self.pairs:
            self.pairs.append(pair)
            self._on_change()

    def _remove(self, _button: Any = None) -> None:
        if self.listed.value in self.pairs:
            self.pairs.remove(self.listed.value)
            self._on_change()


class SearchPanel(w.VBox):
    """The penalty search: a toggle, then the l1 ratios (text), the number of alphas, the
    folds and how they are made (random, grouped by a column, forward by a column).

    ``on_change()`` is called when the user changes any of them.
    """

    def __init__(self, on_change: Callable[[], Any], *, label_width: str = "110px") -> None:
        desc = {"description_width": label_width}
        self._on_change = on_change
        self.on = w.Checkbox(
            description="choose the penalty by cross-validation (penalty search)", indent=False
        )
        self.l1_ratio = w.Text(
            value="0",
            description="l1 ratios",
            placeholder="0, 0.5, 1",
            continuous_update=False,
            style=desc,
            layout=w.Layout(width="420px"),
        )
        self.n_alphas = w.BoundedIntText(value=20, min=2, max=200, description="alphas", style=desc)
        self.folds = w.BoundedIntText(value=5, min=2, max=50, description="folds", style=desc)
        self.fold_kind = w.ToggleButtons(options=FOLD_KINDS, description="folds are", style=desc)
        self.fold_column = w.Dropdown(
            description="by column", style=desc, layout=w.Layout(width="420px")
        )
        self.details = w.VBox(
            [self.l1_ratio, self.n_alphas, self.folds, self.fold_kind, self.fold_column]
        )
        for widget in (
            self.on,
            self.l1_ratio,
            self.n_alphas,
            self.folds,
            self.fold_kind,
            self.fold_column,
        ):
            widget.observe(self._changed, names="value")
        self._muted = False
        super().__init__(
            children=[w.HBox([w.Label(layout=w.Layout(width="118px")), self.on]), self.details]
        )

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Observers do nothing while the form sets the values."""
        muted, self._muted = self._muted, True
        try:
            yield
        finally:
            self._muted = muted

    def show(self) -> None:
        """Details only when the search is on; the column only for grouped or forward folds."""
        self.details.layout.display = "" if self.on.value else "none"
        self.fold_column.layout.display = "none" if self.fold_kind.value == "random" else ""

    def _changed(self, _change: dict[str, Any]) -> None:
        if not self._muted:
            self._on_change()
