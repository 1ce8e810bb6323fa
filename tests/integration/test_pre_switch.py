"""Pre-switch analysis: the idle colour is judged on synthetic traffic before it gets users."""

from __future__ import annotations

import json

import pytest
from conftest import JOURNAL_PATH, bluegreen, ensure_live, live, shell

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab"), pytest.mark.usefixtures("lab")]


def journal_steps(release_id: str) -> dict[str, list[dict]]:
    steps: dict[str, list[dict]] = {}
    for line in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]:
        record = json.loads(line)
        if record["release_id"] == release_id:
            steps.setdefault(record["step"], []).append(record)
    return steps


def test_healthy_release_passes_pre_switch_analysis_and_journals_its_evidence() -> None:
    ensure_live("1.0.0")
    before = live()

    result = bluegreen("release", "--version", "2.0.0")

    assert result.exit_code == 0, result.report
    pre_switch = result.report["custom_stats"]["bluegreen_pre_switch_analysis"]
    assert pre_switch["colour"] != before.colour
    assert pre_switch["compared_with"] is None  # comparison is opt-in
    assert (pre_switch["decision"]["action"], pre_switch["verdict"]) == ("pass", "ok")
    assert pre_switch["requests"] >= 20
    assert pre_switch["load"]["unanswered"] == 0
    steps = journal_steps(result.report["custom_stats"]["bluegreen_release_id"])
    [record] = steps["pre_switch_analysis"]
    assert record["outcome"] == "ok"
    evidence = record["evidence"]
    # The verdict can be explained afterwards: raw samples per target, the load as sent.
    latency = evidence["signals"]["latency_p95"]
    assert latency["verdict"] == "ok" and latency["samples"]
    assert evidence["load"]["step"]["routes"] == ["GET /", "GET /notes?limit=1"]
    assert evidence["comparison"] is None
    assert record["finished_at"] < steps["switch"][0]["started_at"]


def test_slow_release_is_refused_before_the_switch_by_pre_switch_analysis() -> None:
    ensure_live("2.0.0")
    before = live()

    result = bluegreen("release", "--version", "2.0.4+slow1500")

    assert result.exit_code == 3, result.report
    assert result.outcome == "failed_before_switch"
    assert "pre-switch analysis" in result.message and "latency_p95" in result.message
    assert "Traffic was not switched" in result.message
    after = live()
    assert (after.colour, after.version) == (before.colour, "2.0.0")
    steps = journal_steps(result.report["custom_stats"]["bluegreen_release_id"])
    assert "switch" not in steps
    measured, failed = steps["pre_switch_analysis"]
    assert measured["evidence"]["signals"]["latency_p95"]["verdict"] == "critical"
    assert measured["evidence"]["load"]["requests"] >= 50
    assert failed["outcome"] == "failed"
