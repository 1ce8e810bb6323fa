"""golden_signals against a real Prometheus on the single-host lab.

The monitoring playbook is applied by the fixture (it is idempotent); the module runs on
the lab host, as the release runs it on the first load balancer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SINGLE, SINGLE_URL, ansible, ensure_live, live, request, shell

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("single"), pytest.mark.usefixtures("lab")]

HOST = "single1"
PROMETHEUS = "http://127.0.0.1:9090"
# Prometheus scrapes every 5 s (bluegreen_monitoring_scrape_interval in the lab). Quiet
# periods of more than two intervals around the traffic make sure that the samples
# Prometheus holds at the window's edges are the values the module read.
QUIET_S = 12


def ansible_playbook(playbook: str, inventory: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            f"inventories/{inventory}",
            playbook,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )


def golden_signals(**args: object) -> dict:
    result = ansible(HOST, "golden_signals", args, SINGLE)
    assert not result.get("failed"), result
    return result


def promql(query: str, at: float) -> dict:
    """Prometheus' own answer to an instant query at `at`, asked on the lab host."""
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": at})
    answer = ansible(HOST, "ansible.builtin.uri", {"url": url, "return_content": True}, SINGLE)
    assert answer.get("status") == 200, answer
    return answer["json"]


@pytest.fixture(scope="module")
def monitored() -> Iterator[str]:
    """The single-host lab with 2.0.0 live and Prometheus scraping it; the live colour."""
    ensure_live("2.0.0", inventory=SINGLE)
    applied = ansible_playbook("playbooks/monitoring.yml", SINGLE)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-2000:]
    colour = live(SINGLE_URL).colour
    assert colour in ("blue", "green")
    yield colour


def colour_metrics(colour: str) -> str:
    """The /metrics URL of a colour as the lab host reaches it (the service's default ports)."""
    defaults = yaml.safe_load((ROOT / "roles/bluegreen_service/defaults/main.yml").read_text())
    return f"http://127.0.0.1:{defaults['bluegreen_service_ports'][colour]}/metrics"


class VariedTraffic:
    """Clients reading short and long note lists through nginx, so latencies spread over buckets."""

    PATHS = ("/", "/notes?limit=1", "/notes?limit=100", "/notes?limit=500")

    def __init__(self, clients: int = 6, seconds: float = 10) -> None:
        self.deadline = time.monotonic() + seconds
        self.answers: list[int] = []
        self.threads = [
            threading.Thread(target=self.run, args=(index,), daemon=True)
            for index in range(clients)
        ]

    def run(self, index: int) -> None:
        sequence = index
        while time.monotonic() < self.deadline:
            self.answers.append(request(SINGLE_URL, self.PATHS[sequence % len(self.PATHS)]).status)
            sequence += 1

    def drive(self) -> list[int]:
        for thread in self.threads:
            thread.start()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.answers


def test_module_p95_matches_prometheus_histogram_quantile_on_the_same_data(monitored: str) -> None:
    # Enough notes for long lists to be slow, and every series of the window created now,
    # before the baseline: a series born inside the window would be counted differently.
    for index in range(
        500 - len(json.loads(request(SINGLE_URL, "/notes?limit=500").body)["notes"])
    ):
        assert request(SINGLE_URL, "/notes", {"body": f"latency sample {index}"}).status == 201
    assert set(VariedTraffic(clients=4, seconds=2).drive()) == {200}
    time.sleep(QUIET_S)
    baseline = golden_signals(source="scrape", mode="sample", targets=[colour_metrics(monitored)])

    answers = VariedTraffic().drive()

    assert answers and set(answers) == {200}
    time.sleep(QUIET_S)
    module = golden_signals(
        source="scrape",
        targets=[colour_metrics(monitored)],
        baseline=baseline["sample"],
        min_requests=50,
    )
    assert module["requests"] >= len(answers) * 0.99
    # Prometheus' histogram_quantile over the growth of its own bucket samples between
    # the baseline and the end (no rate() extrapolation): the same data as the module's.
    # Its latest samples at either edge were scraped in the quiet periods.
    end = module["evaluated_at"]
    window_ms = round((end - baseline["sample"]["taken_at"]) * 1000)
    buckets = (
        f'http_request_duration_seconds_bucket{{job="sampleapp",colour="{monitored}",'
        'route!~"/health|/metrics"}'
    )
    for quantile, signal in ((0.95, "latency_p95"), (0.99, "latency_p99")):
        growth = f"{buckets} - {buckets} offset {window_ms}ms"
        query = f"histogram_quantile({quantile}, sum by (le) ({growth}))"
        answer = promql(query, end)
        assert answer["status"] == "success", answer
        [series] = answer["data"]["result"]
        prometheus_value = float(series["value"][1])
        module_value = module["signals"][signal]["value"]
        assert module_value > 0.005, f"{signal} {module_value} s fell in the lowest bucket"
        assert module_value == pytest.approx(prometheus_value, rel=0.01), (signal, query)


def test_prometheus_down_is_inconclusive_naming_the_unreachable_source(monitored: str) -> None:
    stopped = shell(HOST, "systemctl stop prometheus", SINGLE)
    assert stopped["rc"] == 0, stopped
    try:
        result = golden_signals(
            source="prometheus",
            prometheus_url=PROMETHEUS,
            selector=f'job="sampleapp",colour="{monitored}"',
            window=60,
        )
    finally:
        assert shell(HOST, "systemctl start prometheus", SINGLE)["rc"] == 0

    assert result["verdict"] == "inconclusive"
    for signal in ("traffic", "error_rate", "latency_p95", "targets_down"):
        reason = result["signals"][signal]["reason"]
        assert result["signals"][signal]["verdict"] == "inconclusive"
        assert "Prometheus is unreachable" in reason and PROMETHEUS in reason, reason


def test_no_traffic_is_inconclusive_naming_too_few_requests(monitored: str) -> None:
    # Nothing is sent through nginx meanwhile; Prometheus' scrapes of /metrics do not count.
    result = golden_signals(source="scrape", targets=[colour_metrics(monitored)], window=3)

    assert result["verdict"] == "inconclusive"
    for signal in ("traffic", "error_rate", "latency_p95"):
        reason = result["signals"][signal]["reason"]
        assert result["signals"][signal]["verdict"] == "inconclusive"
        assert "fewer than min_requests 50" in reason and "too little traffic" in reason, reason


def test_a_missing_metric_is_inconclusive_naming_the_metric(monitored: str) -> None:
    result = golden_signals(
        source="prometheus",
        prometheus_url=PROMETHEUS,
        selector=f'job="sampleapp",colour="{monitored}"',
        requests_metric="sampleapp_no_such_requests_total",
        latency_metric="sampleapp_no_such_duration_seconds",
        window=60,
    )

    assert result["verdict"] == "inconclusive"
    traffic = result["signals"]["traffic"]["reason"]
    latency = result["signals"]["latency_p95"]["reason"]
    assert "sampleapp_no_such_requests_total" in traffic and "the metric is missing" in traffic
    assert result["signals"]["latency_p95"]["verdict"] == "inconclusive"
    assert "sampleapp_no_such_requests_total" in latency, latency


def test_generated_alert_rules_pass_promtool_on_the_lab_host(monitored: str) -> None:
    checked = shell(HOST, "promtool check rules /etc/prometheus/rules/bluegreen.rules.yml", SINGLE)

    assert checked["rc"] == 0, checked
    assert "SUCCESS" in checked["stdout"] and "rules found" in checked["stdout"]
