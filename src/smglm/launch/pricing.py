"""What a SageMaker training job may cost: the shipped price table, cost line and budget guard.

The figures live in ``smglm/data/instance_prices.json``: approximate on-demand prices of
training instances in us-east-1 (US dollars per instance-hour, billed per second), with each
type's vCPUs, memory and GPUs. The file says where they come from and their date. They serve
to warn before a launch (``cost_line``) and to refuse a launch over ``JobConfig.max_cost``
(``check_budget``); an instance type missing from the table has no price, which is said, not
treated as an error.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Any

from smglm.errors import ConfigError, Issue

__all__ = [
    "PRICE_REGION",
    "InstanceInfo",
    "check_budget",
    "cost_line",
    "estimate_cost",
    "instance_info",
    "known_instance_types",
    "price_per_hour",
    "price_table",
]

#: The region whose prices the table holds.
PRICE_REGION = "us-east-1"


@dataclass(frozen=True)
class InstanceInfo:
    """One instance type of the table: on-demand $/h (us-east-1), vCPUs, memory (GiB), GPUs."""

    instance_type: str
    usd_per_hour: float
    vcpu: int
    memory_gib: float
    gpus: int

    def describe(self) -> str:
        """A short label for forms: ``ml.m5.xlarge (4 vCPU, 16 GiB, ~$0.23/h)``."""
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        memory = f"{self.memory_gib:g}"
        return (
            f"{self.instance_type} ({self.vcpu} vCPU, {memory} GiB{gpu}, "
            f"~${self.usd_per_hour:.2f}/h)"
        )


@functools.lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The whole shipped table (``source``, ``as_of``, ``region``, ``instances``, ...).

    Returns
    -------
    dict
        The parsed ``instance_prices.json``; read once and cached.
    """
    text = resources.files("smglm").joinpath("data/instance_prices.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def known_instance_types() -> list[str]:
    """The instance types that have a price, in the table's order (families, then sizes)."""
    return list(price_table()["instances"])


def instance_info(instance_type: str) -> InstanceInfo | None:
    """The table's entry for ``instance_type``, or None if it has none.

    Parameters
    ----------
    instance_type
        A SageMaker instance type such as ``ml.m5.xlarge``.

    Returns
    -------
    InstanceInfo or None
        Price, vCPUs, memory and GPUs; None for a type the table does not list.
    """
    row = price_table()["instances"].get(instance_type)
    if row is None:
        return None
    return InstanceInfo(
        instance_type=instance_type,
        usd_per_hour=float(row["usd_per_hour"]),
        vcpu=int(row["vcpu"]),
        memory_gib=float(row["memory_gib"]),
        gpus=int(row.get("gpus", 0)),
    )


def price_per_hour(instance_type: str) -> float | None:
    """On-demand US dollars per instance-hour in us-east-1 (approximate), None if unknown."""
    info = instance_info(instance_type)
    return None if info is None else info.usd_per_hour


def estimate_cost(instance_type: str, count: int, max_runtime_seconds: float) -> float | None:
    """The most a job can cost: price x instances x the run-time limit, in US dollars.

    Parameters
    ----------
    instance_type
        The training instance type.
    count
        The number of instances.
    max_runtime_seconds
        ``MaxRuntimeInSeconds``: SageMaker stops (and stops billing) the job after it.

    Returns
    -------
    float or None
        The upper bound of the compute cost (storage and data transfer excluded), or None
        when the table has no price for ``instance_type``.
    """
    price = price_per_hour(instance_type)
    if price is None:
        return None
    return price * count * max_runtime_seconds / 3600.0


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _money(amount: float) -> str:
    return "< $0.01" if 0 < amount < 0.005 else f"${amount:,.2f}"


def cost_line(
    instance_type: str, count: int, max_runtime_seconds: float, *, region: str | None = None
) -> str:
    """One line telling what the job may cost, shown before it is launched.

    Parameters
    ----------
    instance_type, count, max_runtime_seconds
        As in :func:`estimate_cost`.
    region
        The job's region; when it is not us-east-1 the line says the price is us-east-1's.

    Returns
    -------
    str
        e.g. ``ml.m5.xlarge x 1, up to 1.0 h: at most $0.23 (on-demand, us-east-1)``, or a line
        saying that the table has no price for this instance type.
    """
    head = f"{instance_type} x {count}, up to {_duration(max_runtime_seconds)}"
    cost = estimate_cost(instance_type, count, max_runtime_seconds)
    if cost is None:
        return (
            f"{head}: no price known for {instance_type!r} (not in smglm's price table); "
            "see the SageMaker AI pricing page"
        )
    where = f"on-demand, {PRICE_REGION}"
    if region and region != PRICE_REGION:
        where = f"on-demand {PRICE_REGION} price; {region} may differ"
    return f"{head}: at most {_money(cost)} ({where})"


def check_budget(cost: float | None, max_cost: float | None) -> None:
    """Refuse a job whose worst-case cost is over ``max_cost``.

    Parameters
    ----------
    cost
        The worst-case cost from :func:`estimate_cost` (None: no price known).
    max_cost
        ``JobConfig.max_cost`` in US dollars (None: no budget).

    Raises
    ------
    ConfigError
        Naming ``max_cost`` when ``cost`` is over it. An unknown cost with a budget only warns
        (the budget cannot be checked), so an instance type missing from the table never
        blocks a launch.
    """
    if max_cost is None:
        return
    if cost is None:
        warnings.warn(
            f"max_cost=${max_cost:.2f} cannot be checked: no price is known for this instance type",
            UserWarning,
            stacklevel=2,
        )
        return
    if cost > max_cost:
        raise ConfigError(
            [
                Issue(
                    "max_cost",
                    f"the job may cost up to {_money(cost)} (approximate on-demand price x "
                    f"instance_count x max_runtime_seconds), over max_cost=${max_cost:.2f}; "
                    "lower max_runtime_seconds or instance_count, choose a cheaper "
                    "instance_type, or raise max_cost",
                    max_cost,
                )
            ]
        )
