"""Pre-switch analysis: the idle colour is judged on synthetic traffic before it gets users.

A healthy release passing it, with its evidence, is checked by test_release.py.
"""

from __future__ import annotations

import json

import pytest
from conftest import JOURNAL_PATH, bluegreen, ensure_live, live, shell

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab2"), pytest.mark.usefixtures("lab")]


def journal_steps(release_id: str) -> dict[str, list[dict]]:
    steps: dict[str, list[dict]] = {}
    for line in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]:
        record = json.loads(line)
        if record["release_id"] == release_id:
            steps.setdefault(record["step"], []).append(record)
    return steps


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
