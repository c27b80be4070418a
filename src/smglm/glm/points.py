"""Model points: fit on rows aggregated to rating cells (being built; issue 14)."""

from __future__ import annotations

from typing import Any

__all__ = ["fit_points"]


def fit_points(
    config: Any,
    data: Any,
    *,
    test_data: Any = None,
    aggregate: str = "auto",
    keep_fitted: bool = False,
) -> Any:
    """The fit on model points, or None when the rows are to be fitted as they are."""
    return None
