"""The in-container entry points (train, evaluate, predict, serve) and the ``/opt/ml`` contract.

Run as ``python -m smglm.runtime {train,evaluate,predict,serve}``
(see :mod:`smglm.runtime.__main__`).
Modules: :mod:`~smglm.runtime.paths` (the tree, moved by ``SMGLM_ML_ROOT``),
:mod:`~smglm.runtime.hyperparameters`, :mod:`~smglm.runtime.channels`,
:mod:`~smglm.runtime.train`, :mod:`~smglm.runtime.evaluate`, :mod:`~smglm.runtime.predict`,
:mod:`~smglm.runtime.metrics` (the metric lines),
:mod:`~smglm.runtime.failure` (``output/failure``, SIGTERM; the exit codes and metric
definitions shared with the launcher are in :mod:`smglm.contract`) and
:mod:`~smglm.runtime.logging_config`. Importing this package loads none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smglm.runtime``: dispatch to a command; return the exit code."""
    from smglm.runtime.__main__ import main as dispatch

    return dispatch(argv)
