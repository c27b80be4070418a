"""The widget form: pick data and columns, family and link, how each predictor enters (spline,
bands, groups, base, missing level, fixed), interactions, penalty (or a penalty search) and
bounds, then launch.

:class:`GLMForm` is a VBox whose children are private; it exposes ``value`` (the GLMConfig
dict), ``reset()``, ``on_submit(callback)``, ``job`` and ``wait()``. The logic lives in
:mod:`smglm.notebook.form_logic` (no ipywidgets); this module only wires widgets to it.
Launch goes through :func:`smglm.notebook.cmd.train.submit`, as ``%%sm_train`` does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from smglm.config.families import FAMILIES
from smglm.errors import MissingDependency, SmglmError
from smglm.glm.report.render import esc
from smglm.notebook import form_logic as logic
from smglm.notebook.cmd.common import current_shell, current_user_ns, dataframe_names, local_frame

try:
    import ipywidgets as w

    from smglm.notebook.form_parts import (
        BoundsEditor,
        InteractionPicker,
        PredictorPicker,
        SearchPanel,
        TermEditor,
    )
except ImportError:  # pragma: no cover - the notebook extra is missing
    w = None

__all__ = ["GLMForm", "form"]

log = logging.getLogger(__name__)


def _pairs(values: list[str], empty: str | None = None) -> list[tuple[str, str]]:
    """Dropdown options as (label, value) pairs, led by ``(empty, "")`` when given."""
    return ([(empty, "")] if empty is not None else []) + [(v, v) for v in values]


def _require_widgets() -> None:
    if w is None:
        raise MissingDependency("ipywidgets", "notebook", "the smglm form")


class GLMForm(w.VBox if w is not None else object):  # type: ignore[misc]
    """A form that builds a GLMConfig from a DataFrame's columns and launches a training job.

    Parameters
    ----------
    data
        A DataFrame, the name of one in ``user_ns``, or a path (CSV/Parquet file or folder).
    user_ns
        The notebook's namespace (default: the running IPython's); its DataFrames are offered.
    """

    def __init__(self, data: Any = None, *, user_ns: dict[str, Any] | None = None) -> None:
        _require_widgets()
        from smglm.notebook.settings import load_settings

        self._ns = user_ns if user_ns is not None else current_user_ns()
        self._frame: Any = None
        self._data_error: str | None = None
        self._callbacks: list[Callable[[Any], Any]] = []
        self._muted = False
        self._test_seed = 0
        self._extra: dict[str, Any] = {}
        self._search_rest: dict[str, Any] = {}
        self._levels_cache: dict[tuple[Any, ...], list[str]] = {}
        self.job: Any = None
        self._monitor: threading.Thread | None = None
        from smglm.launch.backend import DEFAULT_BACKEND

        settings = load_settings()
        self._job_defaults = (
            settings.get("backend") or DEFAULT_BACKEND,
            settings.get("instance_type") or "ml.m5.xlarge",
            settings.get("engine") or "glum",
        )
        self._build()
        super().__init__(children=self._layout())
        self._initial_ref = self._adopt(data)
        self.reset()
        _prewarm(self._job_defaults[0], settings)

    # -- public API -------------------------------------------------------------------------
    @property
    def value(self) -> dict[str, Any]:
        """The GLMConfig (as a dict) the form describes."""
        return logic.config_dict(self._state())

    @value.setter
    def value(self, config: Any) -> None:
        backend, instance = self._backend.value, self._instance.value
        state = logic.state_from_config(
            config, backend=backend, instance_type=instance, engine=self._engine.value
        )
        self._apply(replace(state, data_ref=self._state().data_ref, job_name=self._job_name.value))

    def reset(self) -> None:
        """Back to the initial data and default choices; the launched job is forgotten."""
        backend, instance, engine = self._job_defaults
        self.job = None
        self._apply(
            logic.FormState(backend=backend, instance_type=instance, engine=engine).with_family(
                "gaussian"
            )
        )
        self._set_data(self._initial_ref)
        self._run.children = ()

    def launch(self) -> Any:
        """Launch the job the form describes (what the Launch button does); returns the Job."""
        return self._on_launch()

    def insert_cell(self) -> str:
        """Write the equivalent ``%%sm_train`` cell (what Insert cell does); returns its text."""
        return self._on_insert()

    def on_submit(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(job)`` after Launch has started a job."""
        self._callbacks.append(callback)

    def problems(self) -> list[str]:
        """What is wrong with the current choices (shown under the form)."""
        data = [self._data_error] if self._data_error else []
        return data + logic.check(self._state(), self._frame)

    def cell_text(self) -> str:
        """The ``%%sm_train`` cell equivalent to the form."""
        return logic.cell_text(self._state())

    def wait(self, timeout: float | None = None) -> Any:
        """Wait until the launched job's monitor has finished (job ended, view updated)."""
        if self._monitor is not None:
            self._monitor.join(timeout)
        return self.job

    # -- widgets ----------------------------------------------------------------------------
    def _build(self) -> None:
        def lay() -> Any:
            return w.Layout(width="420px")  # one per widget: _refresh hides some of them

        desc = {"description_width": "110px"}
        self._data_name = w.Dropdown(description="data", style=desc, layout=lay())
        self._data_path = w.Text(
            description="or path",
            placeholder="file, folder or s3:// URI",
            style=desc,
            layout=lay(),
            continuous_update=False,
        )
        self._target = w.Dropdown(description="target", style=desc, layout=lay())
        self._picker = PredictorPicker(self._refresh)
        self._weights = w.Dropdown(description="weights", style=desc, layout=lay())
        self._offset_kind = w.ToggleButtons(
            options=logic.OFFSET_KINDS, description="offset", style=desc
        )
        self._offset_column = w.Dropdown(description="column", style=desc, layout=lay())
        self._family = w.Dropdown(
            options=list(FAMILIES), description="family", style=desc, layout=lay()
        )
        self._link = w.Dropdown(description="link", style=desc, layout=lay())
        self._power = w.BoundedFloatText(
            value=1.5, min=1.01, max=1.99, step=0.05, description="tweedie power", style=desc
        )
        self._alpha = w.BoundedFloatText(
            value=0.0, min=0.0, max=1e6, step=0.01, description="penalty alpha", style=desc
        )
        self._test = w.BoundedFloatText(
            value=0.0, min=0.0, max=0.9, step=0.05, description="test fraction", style=desc
        )
        self._l1 = w.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.05, description="l1_ratio", style=desc
        )
        self._bounds = BoundsEditor(self._refresh)
        self._terms = TermEditor(self._refresh, self._level_choices)
        self._interactions = InteractionPicker(self._refresh)
        self._search = SearchPanel(self._refresh)
        from smglm.launch.backend import backend_names

        self._backend = w.Dropdown(
            options=backend_names(), description="backend", style=desc, layout=lay()
        )
        self._instance = w.Dropdown(
            description="instance", style=desc, layout=w.Layout(width="520px")
        )
        self._engine = w.Dropdown(
            options=[("glum (one machine)", "glum"), ("spark (Spark MLlib GLR)", "spark")],
            value="glum",
            description="engine",
            style=desc,
            layout=lay(),
        )
        self._job_name = w.Text(
            description="job name", placeholder="(generated)", style=desc, layout=lay()
        )
        self._problems_html = w.HTML()
        self._formula_html = w.HTML()
        self._launch = w.Button(description="Launch", button_style="primary", icon="play")
        self._insert = w.Button(description="Insert cell", icon="plus")
        self._cell = w.Textarea(layout=w.Layout(width="640px", height="160px", display="none"))
        self._run = w.VBox()
        for widget in (
            self._data_name, self._data_path, self._target, self._weights, self._offset_kind,
            self._offset_column, self._family, self._link, self._power, self._alpha, self._l1,
            self._test, self._backend, self._instance, self._engine, self._job_name,
        ):  # fmt: skip
            widget.observe(self._changed, names="value")
        self._launch.on_click(self._on_launch)
        self._insert.on_click(self._on_insert)

    def _layout(self) -> list[Any]:
        return [
            w.HTML("<b>smglm: new training job</b>"),
            self._data_name, self._data_path, self._target, self._picker,
            self._weights, self._offset_kind, self._offset_column, self._family, self._link,
            self._power, self._terms, self._interactions, self._search, self._alpha, self._l1,
            self._bounds, self._test, self._backend,
            self._instance, self._engine, self._job_name, self._formula_html,
            self._problems_html,
            w.HBox([self._launch, self._insert]), self._cell, self._run,
        ]  # fmt: skip

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Observers do nothing while the form sets its own values."""
        muted, self._muted = self._muted, True
        try:
            yield
        finally:
            self._muted = muted

    # -- state <-> widgets ------------------------------------------------------------------
    def _state(self) -> logic.FormState:
        power = float(self._power.value)
        return logic.FormState(
            data_ref=self._data_name.value or self._data_path.value.strip(),
            target=self._target.value or "",
            predictors=tuple(self._picker.selected),
            weights=self._weights.value or "",
            offset_kind=self._offset_kind.value,
            offset_column=self._offset_column.value or "",
            family=self._family.value,
            link=self._link.value or "",
            tweedie_power=power,
            alpha=float(self._alpha.value),
            l1_ratio=float(self._l1.value),
            test_fraction=float(self._test.value),
            test_seed=self._test_seed,
            bounds=tuple((t, lo, hi) for t, (lo, hi) in self._bounds.bounds.items()),
            terms=tuple(self._terms.options.items()),
            interactions=tuple(self._interactions.pairs),
            search=bool(self._search.on.value),
            search_l1_ratio=self._search.l1_ratio.value,
            search_n_alphas=int(self._search.n_alphas.value),
            search_folds=int(self._search.folds.value),
            search_fold_kind=self._search.fold_kind.value,
            search_fold_column=self._search.fold_column.value or "",
            search_rest=self._search_rest,
            backend=self._backend.value,
            instance_type=self._instance.value or "",
            engine=self._engine.value,
            job_name=self._job_name.value.strip(),
            extra=self._extra,
        )

    def _apply(self, state: logic.FormState) -> None:
        with self._quiet():
            self._family.value = state.family
            links, default = logic.links_for(state.family)
            self._link.options = links
            self._link.value = state.link if state.link in links else default
            self._power.value = state.tweedie_power
            self._alpha.value = state.alpha
            self._l1.value = state.l1_ratio
            self._test.value = state.test_fraction
            self._test_seed = state.test_seed
            self._offset_kind.value = state.offset_kind
            self._backend.value = state.backend
            self._instance.options = logic.instance_choices(state.instance_type)
            self._instance.value = state.instance_type
            self._engine.value = state.engine
            self._job_name.value = state.job_name
            self._bounds.bounds = {t: (lo, hi) for t, lo, hi in state.bounds}
            self._terms.options = dict(state.terms)
            self._interactions.pairs = list(state.interactions)
            self._search_rest = dict(state.search_rest)
            self._extra = dict(state.extra)
            self._columns(state)
        self._refresh()

    def _columns(self, state: logic.FormState) -> None:
        """Fill the column pickers from the loaded data, keeping what ``state`` chose."""
        choices = (
            logic.column_choices(self._frame)
            if self._frame is not None
            else {"all": [], "numeric": []}
        )
        extra = [c for c in (state.target, state.weights, state.offset_column) if c]
        numeric = list(
            dict.fromkeys(choices["numeric"] + [c for c in extra if c not in choices["all"]])
        )
        self._target.options = _pairs(numeric, "(choose)" if not state.target else None)
        self._target.value = state.target
        self._weights.options = _pairs(numeric, "(none)")
        self._weights.value = state.weights
        self._offset_column.options = _pairs(numeric, "(none)")
        self._offset_column.value = state.offset_column
        columns = [c for c in choices["all"] if c != state.target] or list(state.predictors)
        self._picker.set(columns, list(state.predictors))
        search = self._search
        with search.quiet():
            search.on.value = state.search
            search.l1_ratio.value = state.search_l1_ratio
            search.n_alphas.value = state.search_n_alphas
            search.folds.value = state.search_folds
            search.fold_kind.value = state.search_fold_kind
            fold_columns = list(choices["all"])
            if state.search_fold_column and state.search_fold_column not in fold_columns:
                fold_columns.append(state.search_fold_column)
            search.fold_column.options = _pairs(fold_columns, "(choose)")
            search.fold_column.value = state.search_fold_column

    def _refresh(self) -> None:
        """Visibility, bound choices, and the problems of the current state."""
        self._power.layout.display = "" if self._family.value == "tweedie" else "none"
        self._offset_column.layout.display = "none" if self._offset_kind.value == "none" else ""
        self._bounds.show(self._picker.selected)
        self._terms.show(self._picker.selected)
        self._interactions.show(self._picker.selected)
        self._search.show()
        searching = bool(self._search.on.value)
        self._alpha.layout.display = "none" if searching else ""
        self._l1.layout.display = "none" if searching else ""
        problems = self.problems()
        self._problems_html.value = (
            "<ul style='color:#cf222e'>" + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>"
            if problems
            else "<span style='color:#1a7f37'>&#10003; ready to launch</span>"
        )
        self._launch.disabled = bool(problems)
        self._formula_html.value = self._formula_line()

    def _formula_line(self) -> str:
        """The model as a formula (R style), shown for reading; empty while it is invalid."""
        from smglm.config import GLMConfig

        try:
            text = GLMConfig.from_dict(self.value).formula_text()
        except (SmglmError, ValueError):
            return ""
        return (
            f"<div style='margin-left:118px;color:#57606a'>formula: <code>{esc(text)}</code></div>"
        )

    # -- observers --------------------------------------------------------------------------
    def _changed(self, change: dict[str, Any]) -> None:
        if self._muted:
            return
        owner = change["owner"]
        state = self._state()
        if owner is self._data_path:
            self._set_data(self._data_path.value.strip())
            return
        if owner is self._data_name:
            self._set_data(self._data_name.value or self._data_path.value.strip())
            return
        if owner is self._family:
            self._apply(state.with_family(state.family))
            return
        if owner is self._target:
            with self._quiet():
                self._columns(state)
        self._refresh()

    def _level_choices(self, column: str, options: logic.TermOptions) -> list[str]:
        """The base level's choices, computed once per column and options (the data's
        distinct values are read only when they may have changed)."""
        key = (column, options.kind, options.bands, options.groups, options.missing_level)
        if key not in self._levels_cache:
            self._levels_cache[key] = logic.level_choices(self._frame, column, options)
        return self._levels_cache[key]

    # -- data -------------------------------------------------------------------------------
    def _adopt(self, data: Any) -> str:
        """A reference (namespace name or path) for ``data``; a DataFrame not in the namespace
        is put there as ``smglm_form_data`` so that the generated cell can name it."""
        if data is None or isinstance(data, str):
            return data or ""
        for name, value in self._ns.items():
            if value is data and not name.startswith("_"):
                return name
        self._ns["smglm_form_data"] = data
        return "smglm_form_data"

    def _set_data(self, ref: str) -> None:
        names = dataframe_names(self._ns)
        self._frame, self._data_error = local_frame(ref, self._ns)
        self._levels_cache.clear()
        with self._quiet():
            self._data_name.options = _pairs(names, "(path below)")
            in_ns = ref in names
            self._data_name.value = ref if in_ns else ""
            self._data_path.value = "" if in_ns else ref
            self._columns(replace(self._state(), target="", weights="", offset_column=""))
        self._refresh()

    # -- actions ----------------------------------------------------------------------------
    def _on_insert(self, _button: Any = None) -> str:
        """Write the equivalent ``%%sm_train`` cell below (and show it, to copy if needed)."""
        text = self.cell_text()
        shell = current_shell()
        if shell is not None:
            shell.set_next_input(text, replace=False)
        self._cell.value = text
        self._cell.layout.display = ""
        return text

    def _on_launch(self, _button: Any = None) -> Any:
        from smglm.notebook.cmd.common import resolve_data
        from smglm.notebook.cmd.train import submit
        from smglm.notebook.panel import UploadLine

        self._refresh()
        if self._launch.disabled:
            return None
        state = self._state()
        status = w.HTML("launching...")
        self._run.children = (status,)
        try:
            data = resolve_data(state.data_ref, self._ns)
            self.job = submit(
                self.value,
                data,
                backend=state.backend,
                instance_type=state.instance_type,
                engine=state.engine,
                job_name=state.job_name or None,
                # a slow upload's bytes, in the launch line
                progress=UploadLine(lambda bundle: setattr(status, "value", bundle["text/html"])),
            )
        except SmglmError as exc:
            status.value = f"<pre style='color:#cf222e'>{esc(exc)}</pre>"
            return None
        from smglm.notebook.monitor import JobMonitor

        monitor = JobMonitor(self.job)
        self._run.children = (monitor,)
        self._monitor = monitor.start()
        for callback in self._callbacks:
            callback(self.job)
        return self.job


def form(data: Any = None, *, user_ns: dict[str, Any] | None = None) -> GLMForm:
    """The :class:`GLMForm` for ``data`` (a DataFrame, its name, or a path)."""
    _require_widgets()
    return GLMForm(data, user_ns=user_ns)


def _prewarm(backend: str, settings: Any) -> None:
    """Let the default backend get ready while the user fills the form (the local backend
    starts its warm worker), so that the first launch is warm too; a form never fails
    because of it."""
    try:
        from smglm.notebook.cmd.common import backend_for

        backend_for(backend, settings).prewarm()
    except Exception as exc:  # a bad SMGLM_LOCAL_WARM, an unwritable home: the launch will say
        log.debug("could not get backend %r ready: %s", backend, exc)
