"""What the magic and form tests share: an isolated working folder and an IPython shell with
``%load_ext smglm`` done and a small DataFrame ``df`` in its namespace, as functions and as the
module-scoped fixtures ``workdir`` and ``shell`` (a plugin of ``tests/conftest.py``; IPython is
imported only by the tests that use them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


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
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from smglm.datasets import motor

    config = Config()
    config.HistoryManager.enabled = False
    sh = InteractiveShell.instance(config=config)
    sh.extension_manager.load_extension("smglm")
    sh.user_ns["df"] = motor(4000)
    return sh


@pytest.fixture(scope="module")
def workdir(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """The test module's working folder (:func:`isolated_workdir`), for all its tests."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    with isolated_workdir(tmp_path_factory.mktemp(name)) as root:
        yield root


@pytest.fixture(scope="module")
def shell(workdir: Path) -> InteractiveShell:
    """:func:`smglm_shell`, working in ``workdir``."""
    return smglm_shell()
