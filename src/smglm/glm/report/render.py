"""Rendering helpers of the report and the notebook views: HTML and text tables, numbers, PNG
embedding, and :class:`RichView` (HTML in a notebook, text elsewhere). No IPython needed."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RichView",
    "esc",
    "figure_png",
    "fmt",
    "html_table",
    "img_tag",
    "significance_color",
    "stars",
    "text_table",
]

#: Background colours of the significance shading: (p-value below, colour).
SIGNIFICANCE = ((0.001, "#1a7f3760"), (0.01, "#1a7f3740"), (0.05, "#1a7f3720"), (0.1, "#9a670018"))


def esc(value: Any) -> str:
    """HTML-escaped ``str(value)``."""
    return html.escape(str(value))


def fmt(value: Any, digits: int = 6) -> str:
    """A number as short text (``g`` format; integers as such); other values as ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    if number.is_integer() and abs(number) < 1e15 and abs(number) >= 1:
        return str(int(number))
    return f"{number:.{digits}g}"


def significance_color(p_value: Any) -> str | None:
    """The shading of a coefficient's row by its p-value (None: not significant at 10%)."""
    try:
        p = float(p_value)
    except (TypeError, ValueError):
        return None
    for limit, color in SIGNIFICANCE:
        if p < limit:
            return color
    return None


def stars(p_value: Any) -> str:
    """R's significance codes: ``***`` < 0.001 < ``**`` < 0.01 < ``*`` < 0.05 < ``.`` < 0.1."""
    try:
        p = float(p_value)
    except (TypeError, ValueError):
        return ""
    for limit, code in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < limit:
            return code
    return ""


def html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    row_style: Callable[[int], str | None] | None = None,
    css_class: str = "smglm-table",
) -> str:
    """An HTML table; cells are formatted with :func:`fmt` and escaped, numbers right-aligned."""
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        style = row_style(i) if row_style else None
        attr = f" style='background:{style}'" if style else ""
        cells = "".join(
            f"<td style='text-align:{'right' if _is_number(v) else 'left'}'>{esc(fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr{attr}>{cells}</tr>")
    return (
        f"<table class='{css_class}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        type(value).__module__ == "numpy" and hasattr(value, "dtype")
    )


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    for raw, row in zip(rows, cells, strict=True):
        parts = [
            c.rjust(w) if _is_number(v) else c.ljust(w)
            for v, c, w in zip(raw, row, widths, strict=False)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib Figure (drawn with Agg; the figure is cleared after)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    return buf.getvalue()


def img_tag(png: bytes | Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as base64 (so the notebook keeps it)."""
    data = png.read_bytes() if isinstance(png, Path) else png
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<img alt='{esc(alt)}' title='{esc(alt)}' style='max-width:100%' "
        f"src='data:image/png;base64,{encoded}'/>"
    )


class RichView:
    """Base of the views: ``text/plain`` and ``text/html`` from :meth:`to_text`/:meth:`to_html`."""

    def to_html(self) -> str:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text() if not cycle else f"{type(self).__name__}(...)")
