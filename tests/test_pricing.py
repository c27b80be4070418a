"""The price tables (shipped; refreshed from the AWS Price List API, served from a recorded
answer), the cost line with spot and warm pools, the bill after a job, and the max_cost guard."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smglm.config.job import JobConfig
from smglm.errors import BackendError, ConfigError
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


# -- the refreshed table: the AWS Price List API, served from a recorded answer -----------------
RECORDED = Path(__file__).parent / "data" / "pricing_get_products_eu-west-1.json"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@dataclass
class PriceListServer:
    """The Price List API's GetProducts (JSON 1.1 over HTTP) answering from the recorded pages,
    and the requests botocore sent it. moto has no ``pricing`` backend (5.2.5), so this small
    HTTP server stands in for AWS; the client side is boto3's own (signing, serialising,
    paginating and parsing)."""

    endpoint: str
    requests: list[dict[str, Any]]


@pytest.fixture
def price_list_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PriceListServer]:
    recorded = json.loads(RECORDED.read_text())
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(
                {
                    "target": self.headers["X-Amz-Target"],
                    "authorization": self.headers["Authorization"],
                    "body": body,
                }
            )
            filters = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
            pages = recorded["pages"].get(filters.get("component"), [{"PriceList": []}])
            if filters.get("regionCode") != recorded["region"]:
                pages = [{"FormatVersion": "aws_v1", "PriceList": []}]
            index = 1 if body.get("NextToken") else 0
            data = json.dumps(pages[index]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_PRICING": endpoint,  # botocore's per-service endpoint setting
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config-none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials-none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield PriceListServer(endpoint, requests)
    server.shutdown()
    server.server_close()


def test_recorded_answer_has_the_shape_botocore_parses():
    # Stubber checks each page against the service model's GetProducts output shape
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    recorded = json.loads(RECORDED.read_text())
    with Stubber(client) as stub:
        for pages in recorded["pages"].values():
            for page in pages:
                stub.add_response("get_products", page)
                assert client.get_products(ServiceCode="AmazonSageMaker")["PriceList"]
    for item in recorded["pages"]["Training"][0]["PriceList"]:
        doc = json.loads(item)  # each entry is a JSON document in a string, as AWS sends it
        assert doc["product"]["attributes"]["regionCode"] == "eu-west-1"


def test_parse_price_list_reads_on_demand_hourly_prices():
    recorded = json.loads(RECORDED.read_text())
    items = [i for p in recorded["pages"]["Training"] for i in p["PriceList"]]
    found = pricing.parse_price_list(items, "Training")
    assert found["ml.m5.xlarge"] == {
        "usd_per_hour": 0.257,
        "vcpu": 4,
        "memory_gib": 16.0,
        "gpus": 0,
    }  # the Savings Plan row of ml.m5.xlarge (another usage type, $0) is left out
    assert found["ml.g4dn.xlarge"]["gpus"] == 1
    assert sorted(found) == [
        "ml.c5.xlarge",
        "ml.g4dn.xlarge",
        "ml.m5.4xlarge",
        "ml.m5.large",
        "ml.m5.xlarge",
        "ml.r5.xlarge",
    ]
    assert pricing.parse_price_list(items, "Processing") == {}  # the component is checked


def test_refresh_prices_from_the_price_list_api(price_list_server, tmp_path):
    home = tmp_path / "home"
    table = pricing.refresh_prices("eu-west-1", home=home, now=NOW)
    assert table.refreshed and table.region == "eu-west-1" and table.as_of == "2026-12-03"
    assert table.label == "AWS Price List of 2026-12-03"
    assert table.training["ml.m5.xlarge"] == 0.257
    assert table.processing == {
        "ml.c5.xlarge": 0.23,
        "ml.m5.4xlarge": 1.026,
        "ml.m5.large": 0.128,
        "ml.m5.xlarge": 0.257,
    }
    # what was sent: GetProducts for Training (two pages) then Processing, signed for us-east-1
    sent = price_list_server.requests
    assert [r["target"] for r in sent] == ["AWSPriceListService.GetProducts"] * 3
    assert all("/us-east-1/pricing/aws4_request" in r["authorization"] for r in sent)
    assert [r["body"].get("NextToken") for r in sent] == [None, "tok-training-2", None]
    for request, component in zip(sent, ("Training", "Training", "Processing"), strict=True):
        assert request["body"]["ServiceCode"] == "AmazonSageMaker"
        assert request["body"]["FormatVersion"] == "aws_v1"
        assert request["body"]["Filters"] == [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"},
            {"Type": "TERM_MATCH", "Field": "component", "Value": component},
        ]
    # kept in smglm's cache with its date, not in the package
    path = pricing.cache_path("eu-west-1", home)
    assert path == home / "cache" / "instance-prices-eu-west-1.json"
    cached = json.loads(path.read_text())
    assert cached["as_of"] == "2026-12-03" and cached["fetched_at"] == NOW.isoformat()
    assert cached["approximate"] is False and "GetProducts" in cached["source"]
    assert cached["instances"]["ml.m5.4xlarge"]["usd_per_hour"] == 1.026
    assert pricing.prices("eu-west-1", home=home, now=NOW) == table


def test_refresh_of_an_unknown_region_says_so(price_list_server, tmp_path):
    with pytest.raises(BackendError, match="no SageMaker training price for region 'eu-nowhere-9'"):
        pricing.refresh_prices("eu-nowhere-9", home=tmp_path, now=NOW)
    assert not pricing.cache_path("eu-nowhere-9", tmp_path).exists()


def test_refresh_without_credentials_says_how_to_get_them(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(BackendError, match="no AWS credentials found"):
        pricing.refresh_prices("eu-west-1", home=tmp_path, now=NOW)


def _write_refreshed(home: Path, region: str, fetched: datetime, price: float) -> None:
    path = pricing.cache_path(region, home)
    path.parent.mkdir(parents=True)
    row = {"usd_per_hour": price, "vcpu": 4, "memory_gib": 16, "gpus": 0}
    path.write_text(
        json.dumps(
            {
                "as_of": fetched.date().isoformat(),
                "fetched_at": fetched.isoformat(),
                "region": region,
                "instances": {"ml.m5.xlarge": row},
                "processing": {"ml.m5.xlarge": price + 0.01},
            }
        )
    )


def test_a_fresh_refreshed_table_is_preferred_a_stale_one_is_not(tmp_path):
    _write_refreshed(tmp_path, "us-east-1", NOW, 0.25)
    fresh = pricing.prices(home=tmp_path, now=NOW + timedelta(days=pricing.REFRESH_MAX_AGE_DAYS))
    assert fresh.refreshed and fresh.per_hour("ml.m5.xlarge") == 0.25
    assert fresh.per_hour("ml.m5.xlarge", processing=True) == 0.26
    assert fresh.per_hour("ml.m5.large") is None  # only what AWS listed
    stale = pricing.prices(home=tmp_path, now=NOW + timedelta(days=31))
    assert not stale.refreshed and stale.label == "smglm's price table of 2025-06"
    assert stale.per_hour("ml.m5.xlarge") == 0.23
    # another region's table is not used for us-east-1, nor us-east-1's for it
    assert not pricing.prices("eu-west-1", home=tmp_path, now=NOW).refreshed


def test_cost_line_shows_the_refreshed_table_and_its_date(monkeypatch, tmp_path):
    monkeypatch.setenv("SMGLM_HOME", str(tmp_path))
    _write_refreshed(tmp_path, "eu-west-1", datetime.now(timezone.utc), 0.257)
    today = datetime.now(timezone.utc).date().isoformat()
    line = pricing.cost_line("ml.m5.xlarge", 2, 3600, region="eu-west-1")
    assert line == (
        f"ml.m5.xlarge x 2, up to 1.0 h: at most $0.51 (on-demand, eu-west-1; "
        f"AWS Price List of {today})"
    )
    processing = pricing.cost_line("ml.m5.xlarge", 1, 3600, region="eu-west-1", processing=True)
    assert "at most $0.27" in processing
    assert pricing.price_per_hour("ml.m5.xlarge", region="eu-west-1") == 0.257
    # us-east-1 still uses the shipped table
    assert pricing.cost_line("ml.m5.xlarge", 1, 3600).endswith("smglm's price table of 2025-06)")


def test_cli_prices_refresh_then_show(price_list_server, tmp_path):
    env = {**os.environ, "SMGLM_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "smglm.cli", "prices", "--region", "eu-west-1"]
    refresh = subprocess.run(
        [*command, "--refresh", "--instance-type", "ml.m5.xlarge"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert refresh.returncode == 0, refresh.stderr
    path = tmp_path / "home" / "cache" / "instance-prices-eu-west-1.json"
    assert f"6 training and 4 processing prices for eu-west-1 -> {path}" in refresh.stdout
    today = datetime.now(timezone.utc).date().isoformat()
    assert f"prices: on-demand eu-west-1, AWS Price List of {today}" in refresh.stdout
    assert "ml.m5.xlarge           $0.257/h" in refresh.stdout
    shown = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "ml.g4dn.xlarge         $0.822/h" in shown.stdout
    assert len(price_list_server.requests) == 3  # showing reads the cache, sends nothing
    other = subprocess.run(
        [sys.executable, "-m", "smglm.cli", "prices", "--region", "ap-south-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "smglm's price table of 2025-06 (ap-south-1: none; using us-east-1's)" in other.stdout
    assert "smglm prices --refresh --region ap-south-1" in other.stdout


# -- spot, warm pools and the bill --------------------------------------------------------------
def test_cost_lines_with_managed_spot_and_a_warm_pool():
    lines = pricing.cost_lines(
        "ml.m5.xlarge", 2, 3600, use_spot=True, max_wait_seconds=7200, keep_alive_seconds=1800
    )
    assert lines == [
        "ml.m5.xlarge x 2, up to 1.0 h: at most $0.46 on-demand "
        "(on-demand, us-east-1; smglm's price table of 2025-06)",
        "managed spot: expected about $0.14 (spot saves about 70% typically, up to 90%; the "
        "spot price is not known in advance); at most $0.92 if it runs until max_wait "
        "(2.0 h, interruptions included)",
        "warm pool kept 30 min after the job: the warm pool bills while idle: up to $0.23 per "
        "refit gap",
    ]
    # the worst case: on-demand until max_wait, plus the warm pool's idle time
    worst = pricing.estimate_cost(
        "ml.m5.xlarge", 2, 3600, use_spot=True, max_wait_seconds=7200, keep_alive_seconds=1800
    )
    assert worst == pytest.approx(0.23 * 2 * 2.5)
    assert pricing.estimate_cost("ml.m5.xlarge", 1, 3600, max_wait_seconds=7200) == (
        pytest.approx(0.23)  # max_wait means nothing without spot
    )
    unknown = pricing.cost_lines("ml.zz9.xlarge", 1, 3600, use_spot=True, keep_alive_seconds=60)
    assert len(unknown) == 1 and "no price known" in unknown[0]


def test_billing_line_after_the_job():
    assert pricing.billing_line("ml.m5.xlarge", 1, billable_seconds=None) is None
    assert pricing.billing_line("ml.m5.xlarge", 2, billable_seconds=900) == (
        "billed 900 s x 2 ml.m5.xlarge: $0.12 (on-demand, us-east-1; smglm's price table of "
        "2025-06)"
    )
    spot = pricing.billing_line(
        "ml.m5.xlarge",
        1,
        billable_seconds=312,
        training_seconds=1040,
        use_spot=True,
        warm_pool_seconds=1800,
        region="eu-west-1",
    )
    assert spot == (
        "billed 312 s x 1 ml.m5.xlarge: $0.02 (on-demand us-east-1 price; eu-west-1 may differ; "
        "smglm's price table of 2025-06; `smglm prices --refresh --region eu-west-1` fetches "
        "eu-west-1's); managed spot saved 70% (312 of 1040 training seconds billed); "
        "warm pool idle 1800 s: $0.12"
    )
    unknown = pricing.billing_line("ml.zz9.xlarge", 1, billable_seconds=60)
    assert unknown is not None and "no price known for 'ml.zz9.xlarge'" in unknown


def test_budget_counts_spot_max_wait_and_the_warm_pool():
    worst = pricing.estimate_cost("ml.m5.xlarge", 1, 3600, use_spot=True, max_wait_seconds=4 * 3600)
    with pytest.raises(ConfigError) as info:
        pricing.check_budget(worst, 0.5)
    assert "$0.92" in str(info.value) and "max_wait_seconds with spot" in str(info.value)
