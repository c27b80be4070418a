"""The notebook layer: IPython magics, the widget form and the inline views of jobs and models.

``%load_ext smglm`` registers the magics (:mod:`smglm.notebook.magics`); :func:`form` shows
the widget form. Nothing heavy is imported until a magic, the form or a view is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["form", "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register smglm's magics and displays in ``ipython`` (what ``%load_ext smglm`` calls)."""
    from smglm.notebook.magics import load_ipython_extension as _load

    _load(ipython)


def form(data: Any = None, **options: Any) -> Any:
    """The widget form for ``data`` (a DataFrame, its name, or a path); see :class:`GLMForm`.

    Requires ipywidgets (``pip install 'smglm[notebook]'``).
    """
    from smglm.notebook.glm_form import form as _form

    return _form(data, **options)
