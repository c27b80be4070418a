"""The public API: ``smglm.__all__`` is exactly what the package offers, and it loads lazily."""

from __future__ import annotations

import subprocess
import sys

import smglm


def test_all_names_resolve_and_match_public_attributes():
    for name in smglm.__all__:
        assert getattr(smglm, name) is not None, name
    assert sorted(smglm.__all__) == sorted(dir(smglm))


def test_subpackage_all_lists_only_existing_names():
    import smglm.config
    import smglm.glm
    import smglm.launch

    for module in (smglm.config, smglm.glm, smglm.launch):
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, (module.__name__, missing)


def test_import_smglm_is_lazy():
    code = (
        "import sys, smglm; "
        "heavy = [m for m in ('glum', 'matplotlib', 'mlflow', 'boto3', 'sagemaker', 'pandas') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    try:
        smglm.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'no_such_thing'" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_metric_names_have_one_source():
    from dataclasses import fields

    from smglm.contract import SPLIT_METRICS
    from smglm.glm.stats import SplitMetrics

    assert tuple(f.name for f in fields(SplitMetrics)) == SPLIT_METRICS
