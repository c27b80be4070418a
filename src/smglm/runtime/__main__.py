"""``python -m smglm.runtime {train,evaluate,predict,serve,spark-finish}``: the command dispatcher.

The image puts ``train`` and ``serve`` on PATH as scripts that ``exec`` this module, so
``docker run IMAGE train`` (SageMaker's invocation) lands here with Python as PID 1. Each
command's module is imported only when chosen: ``serve`` never loads the training code.

Exit codes: those of the command (see :mod:`smglm.runtime.failure`), 0 for ``--help``, and 64
(EX_USAGE) for a missing or unknown command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "EXIT_USAGE", "main"]

#: Command -> the module whose ``main(argv) -> int`` runs it.
COMMANDS = {
    "train": "smglm.runtime.train",
    "evaluate": "smglm.runtime.evaluate",
    "predict": "smglm.runtime.predict",
    "serve": "smglm.runtime.serve",
    "spark-finish": "smglm.runtime.spark_finish",
}
EXIT_USAGE = 64
_USAGE = f"usage: python -m smglm.runtime {{{','.join(COMMANDS)}}} [args...]"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its command's ``main(argv[1:])``; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if not args or args[0] not in COMMANDS:
        got = repr(args[0]) if args else "none"
        print(
            f"{_USAGE}\nerror: unknown command {got}; choose one of {list(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[args[0]])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
