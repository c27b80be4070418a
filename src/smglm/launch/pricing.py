"""What a SageMaker job may cost: price tables, cost lines, the budget guard and the bill.

Two price tables. The shipped one, ``smglm/data/instance_prices.json``, holds approximate
on-demand prices of training instances in us-east-1 (US dollars per instance-hour, billed per
second) with each type's vCPUs, memory and GPUs, typed by hand from AWS's pricing page; the file
says its source and date. A refreshed one comes from the AWS Price List API
(:func:`refresh_prices`, ``smglm prices --refresh``): ``GetProducts`` for the service
``AmazonSageMaker``, filtered on the region (``regionCode``) and the component (``Training``,
``Processing``), written with the date it was fetched to ``<smglm home>/cache/`` (never into the
installed package). A refreshed table younger than :data:`REFRESH_MAX_AGE_DAYS` is used in
preference to the shipped one for its region; every cost line says which table it used and its
date.

The prices serve to warn before a launch (:func:`cost_line`: on-demand cost, managed spot's
expected and largest cost, a warm pool's idle cost), to refuse a launch over
``JobConfig.max_cost`` (:func:`check_budget`) and to tell what a finished job cost
(:func:`billing_line`). An instance type missing from the table has no price, which is said, not
treated as an error.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from smglm.errors import BackendError, ConfigError, Issue

__all__ = [
    "PRICE_REGION",
    "REFRESH_MAX_AGE_DAYS",
    "SPOT_SAVING",
    "InstanceInfo",
    "Prices",
    "billing_line",
    "cache_path",
    "check_budget",
    "cost_line",
    "cost_lines",
    "estimate_cost",
    "instance_info",
    "known_instance_types",
    "parse_price_list",
    "price_per_hour",
    "price_table",
    "prices",
    "refresh_prices",
]

#: The region whose prices the shipped table holds.
PRICE_REGION = "us-east-1"
#: A refreshed table older than this (days) is no longer preferred to the shipped one.
REFRESH_MAX_AGE_DAYS = 30
#: The saving managed spot training is assumed to bring for the expected cost: AWS says spot
#: "can optimize the cost of training models up to 90% over on-demand instances"; about 70% is
#: typical. The real saving is known only afterwards (``1 - billable / training seconds``).
SPOT_SAVING = 0.70
#: The Price List API's endpoints are in us-east-1 (also eu-central-1, ap-south-1).
PRICING_API_REGION = "us-east-1"
#: The Price List's service code and product attributes smglm filters and reads.
SERVICE_CODE = "AmazonSageMaker"
_COMPONENTS = {"training": "Training", "processing": "Processing"}


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


@dataclass(frozen=True)
class Prices:
    """The prices a cost line uses: one region's on-demand $/instance-hour.

    Attributes
    ----------
    region
        The region the prices are for.
    as_of
        Their date: ``YYYY-MM`` for the shipped table, ``YYYY-MM-DD`` for a refreshed one.
    refreshed
        Whether they come from the AWS Price List API (else from smglm's shipped table).
    training, processing
        Instance type -> US dollars per instance-hour, for training and processing jobs (the
        shipped table has training prices only; a processing job then uses them).
    """

    region: str
    as_of: str
    refreshed: bool
    training: dict[str, float] = field(default_factory=dict, repr=False)
    processing: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """Where the prices come from and their date, for the cost line."""
        if self.refreshed:
            return f"AWS Price List of {self.as_of}"
        return f"smglm's price table of {self.as_of}"

    def per_hour(self, instance_type: str, *, processing: bool = False) -> float | None:
        """US dollars per instance-hour of ``instance_type`` (None: not in the table)."""
        if processing and instance_type in self.processing:
            return self.processing[instance_type]
        return self.training.get(instance_type)


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


def _shipped() -> Prices:
    table = price_table()
    training = {k: float(v["usd_per_hour"]) for k, v in table["instances"].items()}
    return Prices(str(table["region"]), str(table["as_of"]), False, training, {})


# -- the refreshed table -----------------------------------------------------------------------
def cache_path(region: str = PRICE_REGION, home: str | Path | None = None) -> Path:
    """Where the refreshed table of ``region`` is kept:
    ``<home>/cache/instance-prices-<region>.json`` (``home``: smglm's working folder,
    ``SMGLM_HOME`` or ``./.smglm``)."""
    if home is None:
        from smglm.launch.backend import default_home

        home = default_home()
    return Path(home) / "cache" / f"instance-prices-{region}.json"


@functools.lru_cache(maxsize=16)
def _read_cache(path: str, mtime_ns: int) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return table if isinstance(table.get("instances"), dict) else None


def _refreshed(region: str, home: str | Path | None, now: datetime) -> Prices | None:
    path = cache_path(region, home)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    table = _read_cache(str(path), mtime)
    if table is None:
        return None
    try:
        fetched = datetime.fromisoformat(str(table["fetched_at"]))
    except (KeyError, ValueError):
        return None
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=timezone.utc)
    if now - fetched > timedelta(days=REFRESH_MAX_AGE_DAYS):
        return None
    training = {k: float(v["usd_per_hour"]) for k, v in table["instances"].items()}
    processing = {k: float(v) for k, v in (table.get("processing") or {}).items()}
    return Prices(region, str(table["as_of"]), True, training, processing)


def prices(
    region: str | None = None, *, home: str | Path | None = None, now: datetime | None = None
) -> Prices:
    """The prices to use for jobs in ``region``: its refreshed table when there is one younger
    than :data:`REFRESH_MAX_AGE_DAYS`, else the shipped table (us-east-1's prices).

    Parameters
    ----------
    region
        The jobs' region (default: us-east-1, the shipped table's).
    home
        smglm's working folder, whose ``cache/`` holds refreshed tables (default: ``SMGLM_HOME``
        or ``./.smglm``).
    now
        The current time (default: now), to judge the refreshed table's age.
    """
    when = now or datetime.now(timezone.utc)
    found = _refreshed(region or PRICE_REGION, home, when)
    return found if found is not None else _shipped()


def _number(text: Any) -> float:
    """``"16 GiB"`` -> 16.0, ``"4"`` -> 4.0, ``"N/A"`` -> 0.0."""
    head = str(text or "").strip().split(" ")[0].replace(",", "")
    try:
        return float(head)
    except ValueError:
        return 0.0


def parse_price_list(items: list[str], component: str) -> dict[str, dict[str, Any]]:
    """The on-demand prices in a ``GetProducts`` answer's ``PriceList`` (JSON strings).

    Parameters
    ----------
    items
        ``PriceList`` entries: each a JSON document with ``product.attributes``
        (``instanceName``, ``component``, ``usagetype``, ``vCpu``, ``memory``, ``gpu``) and
        ``terms.OnDemand.<term>.priceDimensions.<dimension>.pricePerUnit.USD`` per ``Hrs``.
    component
        ``Training`` or ``Processing``: products of another component are left out.

    Returns
    -------
    dict
        Instance type -> ``{"usd_per_hour", "vcpu", "memory_gib", "gpus"}``. A product that is
        not an ``ml.*`` instance, whose usage type is not the plain
        ``<region>-<component>:<instance>`` one, or that has no hourly USD price, is left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        doc = json.loads(item) if isinstance(item, str) else item
        attributes = (doc.get("product") or {}).get("attributes") or {}
        name = str(attributes.get("instanceName") or "")
        if not name.startswith("ml.") or attributes.get("component", component) != component:
            continue
        usage = str(attributes.get("usagetype") or "")
        if usage and not usage.endswith(f":{name}"):
            continue  # e.g. a Savings Plan or another variant of the same instance
        price = None
        for term in ((doc.get("terms") or {}).get("OnDemand") or {}).values():
            for dim in (term.get("priceDimensions") or {}).values():
                usd = (dim.get("pricePerUnit") or {}).get("USD")
                if usd is not None and str(dim.get("unit", "Hrs")).lower() in ("hrs", "hours"):
                    price = float(usd)
        if price is None or price <= 0:
            continue
        out[name] = {
            "usd_per_hour": price,
            "vcpu": int(_number(attributes.get("vCpu"))),
            "memory_gib": _number(attributes.get("memory")),
            "gpus": int(_number(attributes.get("gpu"))),
        }
    return out


def refresh_prices(
    region: str = PRICE_REGION,
    *,
    session: Any | None = None,
    home: str | Path | None = None,
    now: datetime | None = None,
) -> Prices:
    """Fetch ``region``'s on-demand training and processing prices from the AWS Price List API
    and keep them, with today's date, in smglm's cache (:func:`cache_path`).

    Sends ``GetProducts`` (``ServiceCode=AmazonSageMaker``; ``TERM_MATCH`` filters on
    ``regionCode`` and ``component`` = ``Training`` / ``Processing``; all pages) to the Price
    List endpoint in us-east-1. Needs AWS credentials allowed ``pricing:GetProducts``.

    Parameters
    ----------
    region
        The region whose prices to fetch (the region of your jobs).
    session
        A ``boto3.Session`` (default: a new one: the usual credentials chain).
    home
        smglm's working folder (default: ``SMGLM_HOME`` or ``./.smglm``).
    now
        The time to record as the fetch time (default: now).

    Returns
    -------
    Prices
        The refreshed prices, as :func:`prices` will return them while they are fresh.

    Raises
    ------
    BackendError
        Without credentials, when AWS refuses the call, or when it lists no training price
        for ``region`` (a region name that does not exist, for instance).
    """
    from smglm.launch.aws import aws_call, boto3_session

    when = now or datetime.now(timezone.utc)
    client = boto3_session(session).client("pricing", region_name=PRICING_API_REGION)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for key, component in _COMPONENTS.items():
        filters = [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "component", "Value": component},
        ]
        items: list[str] = []
        with aws_call(f"Price List GetProducts ({SERVICE_CODE}, {region}, {component})"):
            pages = client.get_paginator("get_products").paginate(
                ServiceCode=SERVICE_CODE, Filters=filters, FormatVersion="aws_v1"
            )
            for page in pages:
                items += page.get("PriceList", [])
        found[key] = parse_price_list(items, component)
    if not found["training"]:
        raise BackendError(
            f"the AWS Price List has no SageMaker training price for region {region!r} "
            "(regionCode): check the region's name (e.g. us-east-1, eu-west-1)"
        )
    table = {
        "description": "On-demand prices of SageMaker AI training and processing instances, "
        "fetched from the AWS Price List API by `smglm prices --refresh`.",
        "source": f"AWS Price List API: GetProducts, ServiceCode {SERVICE_CODE}, regionCode "
        f"{region}, component Training and Processing",
        "as_of": when.date().isoformat(),
        "fetched_at": when.isoformat(),
        "approximate": False,
        "region": region,
        "currency": "USD",
        "unit": "per instance-hour, billed per second",
        "instances": dict(sorted(found["training"].items())),
        "processing": {k: v["usd_per_hour"] for k, v in sorted(found["processing"].items())},
    }
    path = cache_path(region, home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    refreshed = _refreshed(region, home, when)
    assert refreshed is not None  # just written
    return refreshed


# -- the shipped table's catalogue (forms) -----------------------------------------------------
def known_instance_types() -> list[str]:
    """The instance types of the shipped table, in its order (families, then sizes)."""
    return list(price_table()["instances"])


def instance_info(instance_type: str) -> InstanceInfo | None:
    """The shipped table's entry for ``instance_type`` (its price: a fresh refreshed table's for
    us-east-1 when it has one), or None if the table has none.

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
    price = prices().per_hour(instance_type)
    return InstanceInfo(
        instance_type=instance_type,
        usd_per_hour=float(row["usd_per_hour"]) if price is None else price,
        vcpu=int(row["vcpu"]),
        memory_gib=float(row["memory_gib"]),
        gpus=int(row.get("gpus", 0)),
    )


def price_per_hour(
    instance_type: str, *, region: str | None = None, processing: bool = False
) -> float | None:
    """On-demand US dollars per instance-hour (approximate), None if unknown.

    ``region``: the job's region (its refreshed table when fresh, else us-east-1's shipped
    prices); ``processing``: a processing job's price (a training job's when not listed).
    """
    return prices(region).per_hour(instance_type, processing=processing)


def _billed_seconds(
    max_runtime_seconds: float,
    use_spot: bool,
    max_wait_seconds: float | None,
    keep_alive_seconds: float,
) -> float:
    longest = max_runtime_seconds
    if use_spot and max_wait_seconds:
        longest = max(longest, max_wait_seconds)
    return longest + max(0.0, keep_alive_seconds or 0)


def estimate_cost(
    instance_type: str,
    count: int,
    max_runtime_seconds: float,
    *,
    region: str | None = None,
    processing: bool = False,
    use_spot: bool = False,
    max_wait_seconds: float | None = None,
    keep_alive_seconds: float = 0,
) -> float | None:
    """The most a job can cost: price x instances x the longest it can bill, in US dollars.

    Parameters
    ----------
    instance_type
        The training instance type.
    count
        The number of instances.
    max_runtime_seconds
        ``MaxRuntimeInSeconds``: SageMaker stops (and stops billing) the job after it.
    region, processing
        As in :func:`price_per_hour`.
    use_spot, max_wait_seconds
        Managed spot training: the job may run until ``MaxWaitTimeInSeconds`` (interruptions
        and waiting included); spot never bills more than the on-demand price, so the bound
        is the on-demand price up to ``max_wait_seconds``.
    keep_alive_seconds
        A warm pool kept after the job (``KeepAlivePeriodInSeconds``) bills while idle.

    Returns
    -------
    float or None
        The upper bound of the compute cost (storage and data transfer excluded), or None
        when the table has no price for ``instance_type``.
    """
    price = price_per_hour(instance_type, region=region, processing=processing)
    if price is None:
        return None
    seconds = _billed_seconds(max_runtime_seconds, use_spot, max_wait_seconds, keep_alive_seconds)
    return price * count * seconds / 3600.0


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _money(amount: float) -> str:
    return "< $0.01" if 0 < amount < 0.005 else f"${amount:,.2f}"


def _where(table: Prices, region: str | None) -> str:
    if region and region != table.region:
        return (
            f"on-demand {table.region} price; {region} may differ; {table.label}; "
            f"`smglm prices --refresh --region {region}` fetches {region}'s"
        )
    return f"on-demand, {table.region}; {table.label}"


def cost_lines(
    instance_type: str,
    count: int,
    max_runtime_seconds: float,
    *,
    region: str | None = None,
    processing: bool = False,
    use_spot: bool = False,
    max_wait_seconds: float | None = None,
    keep_alive_seconds: float = 0,
) -> list[str]:
    """The lines telling what a job may cost, shown before it is launched.

    Parameters
    ----------
    instance_type, count, max_runtime_seconds
        As in :func:`estimate_cost`.
    region
        The job's region: its refreshed prices when fresh; else the line says the price is
        us-east-1's and how to fetch the region's.
    processing
        A processing job (the Spark engine): processing prices.
    use_spot, max_wait_seconds
        Managed spot training: a line with the expected cost (assuming :data:`SPOT_SAVING`)
        and the most it can cost (on-demand price until ``max_wait_seconds``).
    keep_alive_seconds
        A warm pool: a line with what it bills while idle between jobs.

    Returns
    -------
    list of str
        First ``ml.m5.xlarge x 1, up to 1.0 h: at most $0.23 (on-demand, us-east-1; smglm's
        price table of 2025-06)``, or a line saying the table has no price for this type; then
        the spot and warm-pool lines when they apply.
    """
    head = f"{instance_type} x {count}, up to {_duration(max_runtime_seconds)}"
    table = prices(region)
    price = table.per_hour(instance_type, processing=processing)
    if price is None:
        return [
            f"{head}: no price known for {instance_type!r} (not in {table.label}); "
            "see the SageMaker AI pricing page"
        ]
    rate = price * count / 3600.0
    on_demand = rate * max_runtime_seconds
    where = _where(table, region)
    if not use_spot:
        lines = [f"{head}: at most {_money(on_demand)} ({where})"]
    else:
        lines = [f"{head}: at most {_money(on_demand)} on-demand ({where})"]
        expected = on_demand * (1 - SPOT_SAVING)
        wait = max(max_wait_seconds or max_runtime_seconds, max_runtime_seconds)
        lines.append(
            f"managed spot: expected about {_money(expected)} (spot saves about "
            f"{SPOT_SAVING:.0%} typically, up to 90%; the spot price is not known in advance); "
            f"at most {_money(rate * wait)} if it runs until max_wait ({_duration(wait)}, "
            "interruptions included)"
        )
    if keep_alive_seconds and keep_alive_seconds > 0:
        lines.append(
            f"warm pool kept {_duration(keep_alive_seconds)} after the job: the warm pool "
            f"bills while idle: up to {_money(rate * keep_alive_seconds)} per refit gap"
        )
    return lines


def cost_line(
    instance_type: str,
    count: int,
    max_runtime_seconds: float,
    *,
    region: str | None = None,
    processing: bool = False,
    use_spot: bool = False,
    max_wait_seconds: float | None = None,
    keep_alive_seconds: float = 0,
) -> str:
    """:func:`cost_lines` as one string (one line per fact)."""
    return "\n".join(
        cost_lines(
            instance_type,
            count,
            max_runtime_seconds,
            region=region,
            processing=processing,
            use_spot=use_spot,
            max_wait_seconds=max_wait_seconds,
            keep_alive_seconds=keep_alive_seconds,
        )
    )


def billing_line(
    instance_type: str,
    count: int,
    *,
    billable_seconds: float | None,
    training_seconds: float | None = None,
    use_spot: bool = False,
    warm_pool_seconds: float | None = None,
    region: str | None = None,
    processing: bool = False,
) -> str | None:
    """What a finished job cost: its billable seconds, spot saving and the cost at the table's
    price. None when the job has no billable seconds (yet).

    Parameters
    ----------
    instance_type, count
        The job's instances.
    billable_seconds
        ``BillableTimeInSeconds`` (per instance; spot's saving already taken off).
    training_seconds
        ``TrainingTimeInSeconds``: with spot, the saving is ``1 - billable / training``.
    use_spot
        Whether the job used managed spot training.
    warm_pool_seconds
        ``WarmPoolStatus.ResourceRetainedBillableTimeInSeconds``: the warm pool's idle time.
    region, processing
        As in :func:`price_per_hour`.

    Returns
    -------
    str or None
        e.g. ``billed 312 s x 1 ml.m5.xlarge: $0.02 (on-demand, us-east-1; ...)``, with
        ``managed spot saved 70% (312 of 1040 training seconds billed)``.
    """
    if billable_seconds is None:
        return None
    table = prices(region)
    price = table.per_hour(instance_type, processing=processing)
    line = f"billed {billable_seconds:g} s x {count} {instance_type}"
    if price is None:
        line += f": no price known for {instance_type!r} (not in {table.label})"
    else:
        cost = price * count * billable_seconds / 3600.0
        line += f": {_money(cost)} ({_where(table, region)})"
    if use_spot and training_seconds:
        saved = 1 - billable_seconds / training_seconds
        line += (
            f"; managed spot saved {saved:.0%} ({billable_seconds:g} of {training_seconds:g} "
            "training seconds billed)"
        )
    if warm_pool_seconds:
        extra = ""
        if price is not None:
            extra = f": {_money(price * count * warm_pool_seconds / 3600.0)}"
        line += f"; warm pool idle {warm_pool_seconds:g} s{extra}"
    return line


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
                    f"instance_count x max_runtime_seconds, or max_wait_seconds with spot, "
                    f"plus keep_alive_seconds), over max_cost=${max_cost:.2f}; "
                    "lower max_runtime_seconds or instance_count, choose a cheaper "
                    "instance_type, or raise max_cost",
                    max_cost,
                )
            ]
        )
