"""The shipped price table, the cost line and the max_cost guard."""

from __future__ import annotations

import re
import warnings

import pytest

from smglm.config.job import JobConfig
from smglm.errors import ConfigError
from smglm.launch import pricing

CPU_FAMILIES = ("ml.m5", "ml.m6i", "ml.c5", "ml.c6i", "ml.r5")


def test_price_table_says_where_figures_come_from():
    table = pricing.price_table()
    assert table["approximate"] is True
    assert table["region"] == "us-east-1" == pricing.PRICE_REGION
    assert re.fullmatch(r"\d{4}-\d{2}", table["as_of"])
    assert "pricing" in table["source"].lower()
    assert len(table["instances"]) >= 40


def test_price_table_covers_the_common_training_types():
    known = set(pricing.known_instance_types())
    wanted = {
        f"ml.m5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")
    }
    wanted |= {"ml.m6i.xlarge", "ml.c5.xlarge", "ml.c6i.xlarge", "ml.r5.xlarge"}
    wanted |= {"ml.g4dn.xlarge", "ml.g5.xlarge", "ml.p3.2xlarge"}
    assert wanted <= known
    for name in known:  # every entry is a type JobConfig accepts, with sane figures
        JobConfig(instance_type=name)
        info = pricing.instance_info(name)
        assert info is not None
        assert 0.05 < info.usd_per_hour < 50
        assert info.vcpu >= 2 and info.memory_gib >= 4 and info.gpus >= 0


@pytest.mark.parametrize("family", CPU_FAMILIES)
def test_cpu_family_prices_scale_with_vcpus(family):
    # AWS prices a CPU family linearly in vCPUs: a typo in the hand-made table breaks this
    rows = [pricing.instance_info(t) for t in pricing.known_instance_types()]
    rows = [r for r in rows if r is not None and r.instance_type.startswith(family + ".")]
    assert len(rows) >= 5
    per_vcpu = [r.usd_per_hour / r.vcpu for r in rows]
    assert max(per_vcpu) / min(per_vcpu) == pytest.approx(1.0, abs=0.01)
    per_gib = [r.memory_gib / r.vcpu for r in rows]
    assert len(set(per_gib)) == 1


def test_instance_info_and_price_of_m5_xlarge():
    info = pricing.instance_info("ml.m5.xlarge")
    assert info == pricing.InstanceInfo("ml.m5.xlarge", 0.23, 4, 16.0, 0)
    assert pricing.price_per_hour("ml.m5.xlarge") == 0.23
    assert info.describe() == "ml.m5.xlarge (4 vCPU, 16 GiB, ~$0.23/h)"
    g4 = pricing.instance_info("ml.g4dn.xlarge")
    assert g4 is not None and g4.gpus == 1 and "1 GPU" in g4.describe()


def test_estimate_cost_is_price_times_count_times_hours():
    assert pricing.estimate_cost("ml.m5.xlarge", 1, 3600) == pytest.approx(0.23)
    assert pricing.estimate_cost("ml.m5.xlarge", 2, 1800) == pytest.approx(0.23)
    assert pricing.estimate_cost("ml.p3.2xlarge", 1, 86400) == pytest.approx(3.825 * 24)


def test_cost_line_for_a_known_type():
    line = pricing.cost_line("ml.m5.xlarge", 1, 3600)
    assert line == (
        "ml.m5.xlarge x 1, up to 1.0 h: at most $0.23 "
        "(on-demand, us-east-1; smglm's price table of 2025-06)"
    )
    assert pricing.cost_line("ml.m5.large", 1, 600) == (
        "ml.m5.large x 1, up to 10 min: at most $0.02 "
        "(on-demand, us-east-1; smglm's price table of 2025-06)"
    )
    other = pricing.cost_line("ml.m5.xlarge", 1, 3600, region="eu-west-1")
    assert other.endswith(
        "(on-demand us-east-1 price; eu-west-1 may differ; smglm's price table of 2025-06; "
        "`smglm prices --refresh --region eu-west-1` fetches eu-west-1's)"
    )


def test_unknown_instance_type_has_no_price_and_says_so():
    assert pricing.instance_info("ml.zz9.xlarge") is None
    assert pricing.price_per_hour("ml.zz9.xlarge") is None
    assert pricing.estimate_cost("ml.zz9.xlarge", 1, 3600) is None
    line = pricing.cost_line("ml.zz9.xlarge", 1, 7200)
    assert line.startswith("ml.zz9.xlarge x 1, up to 2.0 h: no price known for 'ml.zz9.xlarge'")


def test_check_budget_over_max_cost_names_the_field():
    cost = pricing.estimate_cost("ml.p3.2xlarge", 1, 3600)
    with pytest.raises(ConfigError) as info:
        pricing.check_budget(cost, 1.0)
    assert info.value.fields == ["max_cost"]
    message = str(info.value)
    assert "$3.83" in message and "max_cost=$1.00" in message
    assert "max_runtime_seconds" in message


def test_check_budget_within_or_without_budget_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pricing.check_budget(0.23, 0.23)
        pricing.check_budget(100.0, None)
        pricing.check_budget(None, None)


def test_check_budget_with_unknown_price_warns_and_does_not_fail():
    with pytest.warns(UserWarning, match="max_cost=\\$5.00 cannot be checked"):
        pricing.check_budget(None, 5.0)
