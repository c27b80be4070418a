"""What the magic and form tests share: an isolated working folder and an IPython shell with
``%load_ext smglm`` done and a small DataFrame ``df`` in its namespace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from smglm.datasets import motor


@contextmanager
def isolated_workdir(root: Path) -> Iterator[Path]:
    """Work in ``root``, with smglm's user config (tracking off) and IPython's folder in it."""
    with pytest.MonkeyPatch.context() as mp:
        config = root / "user-config.yaml"
        config.write_text("tracking: false\n")
        mp.setenv("IPYTHONDIR", str(root / "ipython"))  # no profile or history in ~/.ipython
        mp.setenv("SMGLM_CONFIG_FILE", str(config))
        mp.chdir(root)
        yield root


def smglm_shell() -> InteractiveShell:
    """The IPython shell with the extension loaded and ``df = motor(4000)``."""
    config = Config()
    config.HistoryManager.enabled = False
    sh = InteractiveShell.instance(config=config)
    sh.extension_manager.load_extension("smglm")
    sh.user_ns["df"] = motor(4000)
    return sh
