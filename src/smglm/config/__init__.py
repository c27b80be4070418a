"""smglm's two configs: GLMConfig (the model) and JobConfig (where and how it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smglm.config.families import FAMILIES, FAMILY_LINKS, LINKS
from smglm.config.job import JobConfig
from smglm.config.model import SCHEMA_VERSION, Constraints, GLMConfig, Penalty, TestSplit
from smglm.config.terms import CVSpec, PenaltySearch, Spline, TermSpec

__all__ = [
    "FAMILIES",
    "FAMILY_LINKS",
    "LINKS",
    "SCHEMA_VERSION",
    "CVSpec",
    "Constraints",
    "GLMConfig",
    "JobConfig",
    "Penalty",
    "PenaltySearch",
    "Spline",
    "TermSpec",
    "TestSplit",
    "as_glm_config",
]


def as_glm_config(config: GLMConfig | dict[str, Any] | str | Path) -> GLMConfig:
    """Accept a GLMConfig, a dict, or a YAML/JSON file path (or YAML text with a newline)."""
    if isinstance(config, GLMConfig):
        return config
    if isinstance(config, dict):
        return GLMConfig.from_dict(config)
    if isinstance(config, str) and "\n" in config:
        return GLMConfig.from_yaml(config)
    if isinstance(config, (str, Path)):
        return GLMConfig.from_file(config)
    from smglm.errors import ConfigError, Issue

    raise ConfigError(
        [
            Issue(
                "config",
                "must be a GLMConfig, a dict, or a path to a YAML/JSON file; "
                f"got {type(config).__name__}",
                config,
            )
        ]
    )
