"""Post-switch analysis on real traffic: bad golden signals send traffic back by themselves,
measured at the load balancer (source lb): what nginx served each colour, from a service
that serves no /metrics and names neither its colour nor its version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    JOURNAL_PATH,
    LAB,
    SteadyTraffic,
    bluegreen,
    ensure_live,
    inventory_vars,
    live,
    shell,
)
from reports import rolled_back_report_matches

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab2"), pytest.mark.usefixtures("lab")]

BARE = {
    "bluegreen_analysis_source": "lb",
    "bluegreen_service_env": {"SAMPLEAPP_BARE": "1"},
    "bluegreen_service_version_header": "",
}
CURL = "curl -s -o /dev/null -w '%{http_code}' --max-time 5"


def test_release_whose_error_rate_goes_bad_under_traffic_is_rolled_back_and_reported(
    tmp_path: Path,
) -> None:
    ensure_live("2.0.0")
    before = live()
    idle = "blue" if before.colour == "green" else "green"
    # The fault counts requests from the start of its process: an idle colour still running
    # this build from an earlier run must start counting afresh, as a new deploy does.
    shell(f"app-{idle}", f"systemctl restart sampleapp@{idle}")

    # The new colour runs bare (SAMPLEAPP_BARE): no /metrics and no colour or version
    # header, like most services a team brings. Only the load balancer can judge it.
    with SteadyTraffic(), inventory_vars(LAB, BARE):
        result = bluegreen("release", "--version", "2.0.3+errors30.after200req")
        port = {"blue": 8001, "green": 8002}[idle]
        assert shell(f"app-{idle}", f"{CURL} http://127.0.0.1:{port}/metrics")["stdout"] == "404"
        headers = shell(f"app-{idle}", f"curl -sI http://127.0.0.1:{port}/health")["stdout"]
        assert "x-bluegreen" not in headers.lower(), headers

    assert result.exit_code == 4, result.report
    assert result.outcome == "rolled_back"
    assert "post-switch analysis" in result.message and "error_rate" in result.message
    after = live()
    assert (after.colour, after.version) == (before.colour, "2.0.0")
    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    lines = shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]
    steps: dict[str, dict] = {}
    for record in map(json.loads, lines):
        if record["release_id"] == release_id:
            # The analysis is journaled with its signals, then its failure is recorded.
            steps.setdefault(record["step"], record)
    # The fault starts after 200 requests: past the smoke probes and the pre-switch step.
    assert steps["pre_switch_analysis"]["outcome"] == "ok"
    assert steps["analysis"]["outcome"] == "failed"
    error_rate = steps["analysis"]["evidence"]["signals"]["error_rate"]
    assert error_rate["verdict"] == "critical"
    # Judged from what lb1 logged it served the new colour, not from the service: the
    # fault answers 30 % of requests with 500 once it started.
    served = error_rate["windows"]["lb1"]
    assert served["statuses"].get("500", 0) == served["errors"] > 0, error_rate
    assert 0.05 < error_rate["value"] <= 0.45, error_rate
    assert steps["rollback"]["outcome"] == "ok"
    assert steps["rollback"]["evidence"]["bad_version"] == "2.0.3+errors30.after200req"
    rolled_back_report_matches(result, "2.0.3+errors30.after200req", tmp_path)

    # The bad version names itself nowhere, yet a rollback will not go back to it: what
    # its host runs decides, not a header.
    with inventory_vars(LAB, BARE):
        refused = bluegreen("rollback")
    assert refused.exit_code == 3, refused.report
    assert "refusing to roll back to" in refused.message, refused.message
    assert "2.0.3+errors30.after200req, marked bad" in refused.message, refused.message
    assert live() == after
