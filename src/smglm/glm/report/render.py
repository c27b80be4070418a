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
    "ID_TOKEN",
    "RichView",
    "esc",
    "figure_png",
    "figure_tag",
    "fmt",
    "html_table",
    "img_tag",
    "nav_html",
    "report_css",
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
    digits: int = 6,
) -> str:
    """An HTML table; cells are formatted with :func:`fmt` (``digits`` significant digits) and
    escaped, numbers right-aligned."""
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        style = row_style(i) if row_style else None
        attr = f" style='background:{style}'" if style else ""
        cells = "".join(
            f"<td style='text-align:{'right' if _is_number(v) else 'left'}'>"
            f"{esc(fmt(v, digits))}</td>"
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


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 6) -> str:
    """A plain-text table with aligned columns (numbers right-aligned, ``digits`` significant
    digits)."""
    cells = [[fmt(v, digits) for v in row] for row in rows]
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


#: The resolution of the report's PNGs, drawn in the kernel or saved by a job (the same, so a
#: report looks the same either way).
DPI = 80

#: Stands for the report's unique id in the HTML of its sections; :meth:`Report.to_html`
#: puts a new id in its place on every call, so no two displayed reports share an id.
ID_TOKEN = "smglm-id-0"


def figure_png(fig: Any, dpi: int = DPI) -> bytes:
    """The PNG bytes of a matplotlib Figure (drawn with Agg; the figure is cleared after)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    return buf.getvalue()


def img_tag(png: bytes | Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as base64 (so the notebook keeps it), shown at
    :data:`DPI` pixels per inch of the figure whatever the resolution it was drawn at."""
    data = png.read_bytes() if isinstance(png, Path) else png
    encoded = base64.b64encode(data).decode("ascii")
    width = _display_width(data)
    size = f" width='{width}'" if width else ""
    return (
        f"<img alt='{esc(alt)}' title='{esc(alt)}'{size} style='max-width:100%;height:auto' "
        f"src='data:image/png;base64,{encoded}'/>"
    )


def _display_width(png: bytes) -> int | None:
    """The width to show a PNG at: its width in inches (its pixels over the resolution in its
    ``pHYs`` chunk, which matplotlib writes) times :data:`DPI`; None if it has no ``pHYs``."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pixels = int.from_bytes(png[16:20], "big")
    at = png.find(b"pHYs", 0, 4096)
    if at < 0:
        return None
    per_metre = int.from_bytes(png[at + 4 : at + 8], "big")
    if png[at + 12] != 1 or per_metre <= 0:
        return None
    return round(pixels / (per_metre * 0.0254) * DPI)


def figure_tag(png: bytes | Path, alt: str, caption: str) -> str:
    """A ``<figure class="smglm-figure">``: the PNG embedded, and a short caption under it."""
    return (
        f"<figure class='smglm-figure'>{img_tag(png, alt)}"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def nav_html(group: str, panels: Sequence[tuple[str, str]], label_class: str) -> str:
    """Panels shown one at a time, chosen by labels, in pure HTML and CSS (no script, no
    kernel): a radio input and a ``<label class=label_class>`` per panel, the first checked.

    ``group`` is the radio group's name and the prefix of the inputs' ids: unique in the page
    (it holds :data:`ID_TOKEN`). The CSS is :func:`report_css`'s; without it, every panel shows.
    """
    inputs = []
    for i, (title, _) in enumerate(panels):
        checked = " checked" if i == 0 else ""
        inputs.append(
            f"<input type='radio' class='smglm-radio' name='{group}' id='{group}-{i}'{checked}/>"
            f"<label class='{label_class}' for='{group}-{i}' title='{esc(title)}'>{esc(title)}"
            "</label>"
        )
    shown = "".join(
        f"<div class='smglm-nav-{i + 1} smglm-navpanel' data-title='{esc(title)}'>{body}</div>"
        for i, (title, body) in enumerate(panels)
    )
    return (
        f"<div class='smglm-nav {label_class}s'>{''.join(inputs)}"
        f"<div class='smglm-navpanels'>{shown}</div></div>"
    )


def report_css(panels: int) -> str:
    """The report's ``<style>``: tabs and pills (:func:`nav_html`) for up to ``panels`` panels
    per group, figures and tables. Every selector is under ``.smglm-report``."""
    n = max(panels, 12)
    show = ",".join(
        f".smglm-report .smglm-nav>input:nth-of-type({i}):checked~.smglm-navpanels>"
        f".smglm-navpanel:nth-of-type({i})"
        for i in range(1, n + 1)
    )
    return (
        "<style>"
        ".smglm-report{font-size:13px;max-width:1200px}"
        ".smglm-report .smglm-radio{position:absolute;opacity:0;width:1px;height:1px;margin:0}"
        ".smglm-report .smglm-nav>.smglm-navpanels>.smglm-navpanel{display:none}"
        f"{show}{{display:block}}"
        ".smglm-report .smglm-navpanels{clear:both;padding-top:6px}"
        ".smglm-report label.smglm-tab,.smglm-report label.smglm-pill{display:inline-block;"
        "cursor:pointer;white-space:nowrap;margin:0 2px 4px 0;user-select:none}"
        ".smglm-report label.smglm-tab{padding:5px 12px;border:1px solid #bbb;"
        "border-radius:4px 4px 0 0;background:#f4f4f4;color:#333}"
        ".smglm-report label.smglm-pill{padding:2px 10px;border:1px solid #bbb;"
        "border-radius:12px;background:#fff;color:#333;font-size:12px}"
        ".smglm-report .smglm-radio:checked+label.smglm-tab{background:#1f4e79;color:#fff;"
        "border-color:#1f4e79}"
        ".smglm-report .smglm-radio:checked+label.smglm-pill{background:#d95f02;color:#fff;"
        "border-color:#d95f02}"
        ".smglm-report .smglm-radio:focus-visible+label{outline:2px solid #4a90d9}"
        ".smglm-report figure.smglm-figure{margin:4px;display:inline-block;max-width:100%}"
        ".smglm-report figure.smglm-figure img{max-width:100%;height:auto}"
        ".smglm-report figcaption{font-size:12px;color:#555;max-width:760px}"
        ".smglm-report .smglm-grid{display:flex;flex-wrap:wrap}"
        ".smglm-report table.smglm-table td,.smglm-report table.smglm-table th{padding:2px 10px}"
        ".smglm-report .smglm-note{font-size:12px;color:#555;max-width:900px}"
        ".smglm-report details.smglm-all-metrics{margin-top:6px}"
        ".smglm-report details.smglm-all-metrics>summary{cursor:pointer;color:#1f4e79}"
        "</style>"
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
