"""Releases, rollbacks and refusals on the multi-host lab (lb1, app-blue, app-green, db1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import (
    LAB,
    LAB_URL,
    ROOT,
    Outcome,
    SteadyTraffic,
    ansible,
    bluegreen,
    ensure_live,
    inventory_vars,
    live,
    request,
    shell,
)
from reports import (
    failed_before_switch_report_matches,
    journal_copy,
    released_report_matches,
    report,
    version_on,
)

sys.path.insert(0, str(ROOT / "bench"))

from _load import PageLoads

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab2"), pytest.mark.usefixtures("lab")]

LOCK = "/var/lib/bluegreen/sampleapp/lock"
JOURNAL = "/var/lib/bluegreen/sampleapp/journal.jsonl"


def journal_records(release_id: str) -> list[dict]:
    lines = shell("lb1", f"cat {JOURNAL}")["stdout_lines"]
    return [record for record in map(json.loads, lines) if record["release_id"] == release_id]


def changes_made_on(host: str, result: Outcome) -> list[str]:
    """Names of the tasks that changed something on the host itself (not delegated away)."""
    events = sorted((Path(result.report["run_dir"]) / "job_events").glob("*.json"))
    changed = []
    for event in map(json.loads, (path.read_text() for path in events)):
        data = event.get("event_data", {})
        res = data.get("res") or {}
        if event["event"] not in ("runner_on_ok", "runner_item_on_ok") or data.get("host") != host:
            continue
        if "results" in res or "_ansible_delegated_vars" in res or not res.get("changed"):
            continue
        changed.append(data["task"])
    return changed


def colour_versions() -> dict[str, str | None]:
    """The version each colour runs, as `bluegreen status` reports it."""
    status = bluegreen("status")
    assert status.exit_code == 0, status.report
    colours = status.report["custom_stats"]["bluegreen_status"]["colours"]
    return {colour: colours[colour]["version"] for colour in ("blue", "green")}


def answering_versions() -> dict[str, str | None]:
    """The version each colour answers with, asked on its app host directly."""
    return {colour: version_on(colour) for colour in ("blue", "green")}


def test_release_moves_traffic_keeps_the_data_journals_every_step_and_reports_it(
    tmp_path: Path,
) -> None:
    ensure_live("1.0.0")
    before = live()
    created = request(LAB_URL, "/notes", {"body": "written before the release"})
    assert created.status == 201
    note_id = json.loads(created.body)["id"]

    # Browsers load the sample's frontend (/ui/) and its content-hashed assets all along:
    # the switch must never give one a page of one version with a script of the other.
    with SteadyTraffic(limit_s=1200), PageLoads(LAB_URL, "/ui/", clients=3) as pages:
        result = bluegreen("release", "--version", "2.0.0", timeout=1800)

    assert result.exit_code == 0, result.report
    assert result.outcome == "released"
    after = live()
    assert after.version == "2.0.0"
    assert after.colour != before.colour
    read = request(LAB_URL, f"/notes/{note_id}")
    assert read.status == 200 and read.version == "2.0.0"
    assert json.loads(read.body)["body"] == "written before the release"

    records = journal_records(result.report["custom_stats"]["bluegreen_release_id"])
    by_step = {record["step"]: record for record in records}
    assert [record["step"] for record in records] == [
        "policy",
        "preflight",
        "lock",
        "plan",
        "snapshot",
        "migrate",
        "deploy",
        "frontend",
        "pre_switch_analysis",
        "switch",
        "analysis",
        "release",
    ]
    snapshot, deploy, switch = by_step["snapshot"], by_step["deploy"], by_step["switch"]
    assert snapshot["evidence"]["verified"] is True
    assert snapshot["evidence"]["size_bytes"] > 0
    # The lab encrypts its snapshots (group_vars/all/backup.yml): only ciphertext is kept.
    assert [entry["path"] for entry in snapshot["evidence"]["files"]] == ["database.dump.age"]
    published = (ROOT / "artifacts/sampleapp-2.0.0.tar.gz.sha256").read_text().split()[0]
    assert deploy["evidence"]["artifact_sha256"] == published
    assert [answer["status"] for answer in deploy["evidence"]["smoke"]] == [200, 200]
    assert switch["evidence"]["switch_ms"]["lb1"] > 0
    assert by_step["analysis"]["evidence"]["measurements"] >= 1
    assert by_step["release"]["evidence"]["outcome"] == "released"
    # Steps that span time carry their duration; point records (lock, plan...) do not.
    assert all(r["duration_s"] is not None for r in records if r["started_at"] is not None)
    assert by_step["release"]["duration_s"] > by_step["deploy"]["duration_s"] > 0

    # The idle colour was judged on synthetic traffic before it got users.
    pre_switch = result.report["custom_stats"]["bluegreen_pre_switch_analysis"]
    assert pre_switch["colour"] == after.colour
    assert pre_switch["compared_with"] is None  # comparison is opt-in
    assert (pre_switch["decision"]["action"], pre_switch["verdict"]) == ("pass", "ok")
    assert pre_switch["requests"] >= 20
    assert pre_switch["load"]["unanswered"] == 0
    judged = by_step["pre_switch_analysis"]
    assert judged["outcome"] == "ok"
    # The verdict can be explained afterwards: what each server answered the load step
    # (judged at the load balancer's way, the default source), and the load as sent.
    latency = judged["evidence"]["signals"]["latency_p95"]
    assert latency["verdict"] == "ok", latency
    assert sum(window["requests"] for window in latency["windows"].values()) >= 20, latency
    assert judged["evidence"]["load"]["step"]["routes"] == ["GET /", "GET /notes?limit=1"]
    assert judged["evidence"]["comparison"] is None
    assert judged["finished_at"] < switch["started_at"]

    page_loads = pages.summary()
    assert (page_loads["mixed"], page_loads["failed"]) == (0, 0), page_loads
    assert page_loads["versions"] == ["1.0.0", "2.0.0"], page_loads
    assert by_step["frontend"]["evidence"]["version"] == "2.0.0"

    released_report_matches(result, "1.0.0", tmp_path)


def test_a_release_nothing_measured_is_unverified_and_no_rollback_target(tmp_path: Path) -> None:
    ensure_live("2.0.0")  # verified under traffic by the release test above

    # Nobody sends traffic: the post-switch analysis has nothing to judge.
    quiet = bluegreen("release", "--version", "2.1.0")

    assert quiet.exit_code == 0, quiet.report
    assert quiet.outcome == "unverified"
    assert "UNVERIFIED" in quiet.message and "--allow-unverified" in quiet.message
    release_id = quiet.report["custom_stats"]["bluegreen_release_id"]
    history = bluegreen("history").report["history"]
    row = next(r for r in history["releases"] if r["release_id"] == release_id)
    assert (row["state"], row["verified"]) == ("unverified", False)
    assert "--allow-unverified" in history["rollback_refused_versions"]["2.1.0"]
    status = bluegreen("status").report["custom_stats"]["bluegreen_status"]
    assert status["version_states"]["2.1.0"]["state"] == "unverified"
    assert status["version_states"]["2.0.0"]["state"] == "verified"
    journal, _ = journal_copy(tmp_path)
    document = json.loads(report(journal, release_id))
    assert document["decision"]["outcome"] == "unverified"
    assert "nothing measured" in document["decision"]["summary"]

    # Back to the verified 2.0.0: allowed. Back again to the unverified 2.1.0: refused,
    # naming it and the option; with the option it goes.
    assert bluegreen("rollback").outcome == "rolled_back"
    assert live().version == "2.0.0"
    refused = bluegreen("rollback")
    assert refused.exit_code == 3, refused.report
    assert "2.1.0" in refused.message and "never verified" in refused.message
    assert "--allow-unverified" in refused.message
    assert live().version == "2.0.0"
    allowed = bluegreen("rollback", "--allow-unverified")
    assert allowed.exit_code == 0, allowed.report
    assert live().version == "2.1.0"
    assert bluegreen("rollback").outcome == "rolled_back"  # 2.0.0 live, 2.1.0 warm


def test_rollback_refuses_an_unhealthy_colour_then_returns_to_the_warm_one() -> None:
    ensure_live("2.0.0")
    new_colour = live().colour
    old_colour = "blue" if new_colour == "green" else "green"
    warm = version_on(old_colour)  # the tests above leave a healthy version there
    assert warm is not None
    shell(f"app-{old_colour}", f"systemctl stop sampleapp@{old_colour}")
    try:
        refused = bluegreen("rollback", "--allow-unverified")
    finally:
        shell(f"app-{old_colour}", f"systemctl start sampleapp@{old_colour}")

    assert refused.exit_code == 3, refused.report
    assert f"refusing to switch to {old_colour}" in refused.message
    assert live().colour == new_colour

    result = bluegreen("rollback", "--allow-unverified")

    assert result.exit_code == 0, result.report
    assert result.outcome == "rolled_back"
    answer = live()
    assert (answer.version, answer.colour) == (warm, old_colour)


def test_releasing_the_live_version_again_changes_nothing() -> None:
    ensure_live("2.0.0")
    before = live()

    result = bluegreen("release", "--version", "2.0.0")

    assert result.exit_code == 0, result.report
    assert result.outcome == "unchanged"
    # The app hosts only carry the journal's plan record to lb1 and the controller.
    assert changes_made_on("app-blue", result) == []
    assert changes_made_on("app-green", result) == []
    assert live().colour == before.colour


def test_crashing_version_never_gets_traffic_the_idle_colour_is_restored_and_reported(
    tmp_path: Path,
) -> None:
    ensure_live("2.0.0")
    before = live()
    idle_before = answering_versions()

    result = bluegreen("release", "--version", "2.0.1+crash")

    assert result.exit_code == 3, result.report
    assert result.outcome == "failed_before_switch"
    assert "not healthy" in result.message and "crash" in result.message
    assert live().colour == before.colour and live().version == "2.0.0"
    assert answering_versions() == idle_before
    failed_before_switch_report_matches(result, before, "2.0.1+crash", tmp_path)


def test_version_answering_5xx_is_stopped_by_the_smoke_probe() -> None:
    ensure_live("2.0.0")
    live_colour = live().colour

    result = bluegreen("release", "--version", "2.0.2+http500")

    assert result.exit_code == 3, result.report
    assert "smoke probe failed" in result.message
    assert "answered 500" in result.message
    answer = live()
    assert (answer.colour, answer.version, answer.status) == (live_colour, "2.0.0", 200)


def test_second_release_is_refused_at_once_naming_the_lock_holder() -> None:
    ensure_live("2.0.0")
    held = ansible(
        "lb1",
        "release_lock",
        {"path": LOCK, "owner": {"user": "alice", "release_id": "r-alice", "version": "9.9.9"}},
    )
    assert held["changed"], held
    try:
        result = bluegreen("release", "--version", "1.0.0")
    finally:
        ansible(
            "lb1", "release_lock", {"path": LOCK, "state": "absent", "lock_id": held["lock_id"]}
        )

    assert result.exit_code == 3, result.report
    assert "held by alice" in result.message
    assert held["lock_id"] in result.message
    assert live().version == "2.0.0"


def test_broken_nginx_configuration_is_refused_before_anything_changes() -> None:
    """A switch reloads nothing, so only the check before it can catch a configuration
    nginx would not start with; the release stops there and the flag stays as it was."""
    ensure_live("2.0.0")
    before = live()
    shell("lb1", "echo 'this is not nginx configuration;' > /etc/nginx/conf.d/zz-broken.conf")
    try:
        result = bluegreen("release", "--version", "1.0.0")
    finally:
        shell("lb1", "rm -f /etc/nginx/conf.d/zz-broken.conf")

    assert result.exit_code in (3, 4), result.report
    assert "nginx -t fails on lb1" in result.message
    assert "zz-broken.conf" in result.message
    after = live()
    assert (after.colour, after.version) == (before.colour, "2.0.0")
    flag = shell("lb1", "test -e /etc/nginx/bluegreen/sampleapp.green-live")
    assert (flag["rc"] == 0) == (before.colour == "green")


def test_a_role_input_of_the_wrong_type_is_refused_before_the_lock_naming_it() -> None:
    # No include validates its role at run time: the one check of every role input the
    # inventory sets (role_inputs, the first task of every command) must catch it.
    before = colour_versions()
    with inventory_vars(LAB, {"bluegreen_analysis_count": "three", "bluegreen_lb_keepalive": []}):
        result = bluegreen("release", "--version", "2.0.0")

    assert (result.exit_code, result.outcome) == (2, "refused"), result.report
    assert "'bluegreen_analysis_count' is of type str" in result.message, result.message
    assert "(bluegreen_analysis's main) [on app-blue, app-green, db1, lb1]" in result.message
    assert "bluegreen_lb_keepalive" in result.message, result.message
    assert "Fix the inventory" in result.message
    assert colour_versions() == before
    assert shell("lb1", f"test -e {LOCK} && echo held || echo free")["stdout"] == "free"


def test_missing_artifact_is_refused_before_anything_changes() -> None:
    ensure_live("2.0.0")
    before = colour_versions()

    result = bluegreen("release", "--version", "7.7.7")

    assert result.exit_code == 3, result.report
    assert "sampleapp-7.7.7.tar.gz does not exist" in result.message
    assert "bluegreen build" in result.message
    assert colour_versions() == before
    assert shell("lb1", f"test -e {LOCK} && echo held || echo free")["stdout"] == "free"
