"""The families and links smglm offers, and which links each family accepts.

The one list of names: validation (the error messages list these choices), the notebook form,
the family objects (:mod:`smglm.glm.families`, which hold each family's behaviour and must
agree with this table) and the engines' capabilities all read it. Nothing here imports numpy
or glum.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CANONICAL_LINK",
    "DEFAULT_LINK",
    "DEFAULT_THETA",
    "DEFAULT_TWEEDIE_POWER",
    "FAMILIES",
    "FAMILY_LINKS",
    "LINKS",
    "FamilyName",
    "LinkName",
]

FamilyName = Literal[
    "gaussian",
    "binomial",
    "poisson",
    "gamma",
    "inverse_gaussian",
    "tweedie",
    "negative_binomial",
]
LinkName = Literal["identity", "log", "logit", "probit", "cloglog", "inverse"]

FAMILIES: tuple[str, ...] = get_args(FamilyName)
LINKS: tuple[str, ...] = get_args(LinkName)

#: Links each family accepts; the first is the default (canonical, or conventional in pricing:
#: log for gamma, inverse_gaussian, tweedie and negative_binomial).
FAMILY_LINKS: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cloglog", "log"),
    "poisson": ("log", "identity"),
    "gamma": ("log", "inverse", "identity"),
    "inverse_gaussian": ("log", "inverse", "identity"),
    "tweedie": ("log", "identity"),
    "negative_binomial": ("log", "identity"),
}
DEFAULT_LINK: dict[str, str] = {f: links[0] for f, links in FAMILY_LINKS.items()}
#: The canonical link, where smglm offers it (for the docs and the widget's labels).
CANONICAL_LINK: dict[str, str] = {
    "gaussian": "identity",
    "binomial": "logit",
    "poisson": "log",
    "gamma": "inverse",
}

#: The Tweedie variance power when the config gives none (``family: tweedie``).
DEFAULT_TWEEDIE_POWER = 1.5
#: The negative binomial's theta when the config gives none (``family: negative_binomial``).
DEFAULT_THETA = 1.0
