"""The release report: rendered from journal entries captured from real lab releases.

The fixtures under fixtures/report/ are the journal records of three releases on the lab
(a successful one, one whose new version crashed before the switch, and one rolled back
by the post-switch analysis). They hold no secrets: the journal redacts them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen.errors import InputError
from bluegreen.report import (
    CHECKS,
    FAILED_TASKS,
    NOT_RUN,
    PASSED,
    build_report,
    chart_points,
    controller_journal,
    entries_of,
    read_entries,
    release_ids,
    render,
    render_html,
    render_markdown,
    render_svg_chart,
    write_reports,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "report"


def entries(name: str) -> list[dict]:
    return read_entries(FIXTURES / f"{name}.jsonl")


def checks(report: dict) -> dict[str, dict]:
    return {check["id"]: check for check in report["checks"]}


@pytest.fixture
def released() -> dict:
    return build_report(entries("released"), inventory="lab")


@pytest.fixture
def crashed() -> dict:
    return build_report(entries("failed_before_switch"), inventory="lab")


@pytest.fixture
def rolled_back() -> dict:
    return build_report(entries("rolled_back"), inventory="lab")


# --- a successful release ------------------------------------------------------------


def test_every_check_of_a_successful_release_shows_its_evidence(released: dict) -> None:
    records = {r["step"]: r for r in entries("released")}
    found = checks(released)
    assert [c["id"] for c in released["checks"]] == [check_id for check_id, _, _ in CHECKS]
    artifact = records["preflight"]["evidence"]["artifact_sha256"]
    assert found["artifact"]["status"] == PASSED
    assert found["artifact"]["evidence"]["sha256"] == artifact
    assert artifact in found["artifact"]["summary"]
    snapshot = records["snapshot"]["evidence"]
    assert found["backup"]["evidence"]["snapshot_id"] == snapshot["snapshot_id"]
    assert snapshot["files"][0]["sha256"] in found["backup"]["summary"]
    assert found["backup"]["time"] == records["snapshot"]["finished_at"]
    assert "not encrypted (owner-only files)" in found["backup"]["summary"]
    assert found["version"]["evidence"] == records["deploy"]["evidence"]["version_check"]
    assert found["smoke"]["evidence"]["answers"] == records["deploy"]["evidence"]["smoke"]
    assert found["switch"]["status"] == PASSED
    assert found["post_switch_signals"]["status"] == PASSED
    assert released["decision"]["outcome"] == "released"
    assert released["version"] == "2.0.0"


def test_a_check_without_evidence_is_not_run_never_passed(released: dict) -> None:
    pre = checks(released)["pre_switch_signals"]
    assert pre["status"] == NOT_RUN and pre["time"] is None
    assert released["signals"]["pre_switch"] is None


@pytest.mark.parametrize("fixture", ["released", "failed_before_switch", "rolled_back"])
def test_removing_a_record_never_leaves_its_check_passed(fixture: str) -> None:
    records = entries(fixture)
    for index, record in enumerate(records):
        remaining = records[:index] + records[index + 1 :]
        if not remaining:
            continue
        report = build_report(remaining, record["release_id"], "lab")
        for check in report["checks"]:
            if check["step"] == record["step"] and record["step"] != "deploy":
                assert check["status"] != PASSED, (record["step"], check)
        if record["step"] == "deploy":
            for check_id in ("health", "smoke", "version", "migrations"):
                assert checks(report)[check_id]["status"] != PASSED


def test_the_rollback_command_of_a_successful_release_is_exact(released: dict) -> None:
    assert released["rollback"]["command"] == "bluegreen rollback -i lab"
    assert released["rollback"]["playbook_command"] == (
        "ansible-playbook -i inventories/lab playbooks/rollback.yml"
    )
    assert "back from blue to green" in released["rollback"]["note"]


def test_the_timeline_is_the_journal_in_order(released: dict) -> None:
    assert [item["step"] for item in released["timeline"]] == [
        r["step"] for r in entries("released")
    ]


# --- failures ---------------------------------------------------------------------------


def test_a_crash_before_the_switch_fails_health_and_leaves_the_rest_not_run(crashed: dict) -> None:
    found = checks(crashed)
    assert crashed["decision"]["outcome"] == "failed_before_switch"
    assert crashed["decision"]["failed_step"] == "deploy"
    assert found["health"]["status"] == "failed"
    assert "not healthy" in found["health"]["summary"]
    for check_id in ("smoke", "version", "switch", "post_switch_signals"):
        assert found[check_id]["status"] == NOT_RUN
    assert found["artifact"]["status"] == PASSED
    assert crashed["rollback"]["command"] is None
    assert "traffic never moved" in crashed["rollback"]["note"]


@pytest.mark.parametrize("check", ["health", "smoke", "version", "healthcheck"])
def test_colour_start_names_the_check_that_stopped_the_release(check: str) -> None:
    records = entries("failed_before_switch")
    for record in records:
        if record["step"] == "deploy" and record["outcome"] == "failed":
            record["evidence"] = {
                "task": "Start the idle colour on its release and prove it healthy",
                "check": check,
            }
    found = checks(build_report(records, inventory="lab"))
    assert found[check]["status"] == "failed"
    others = {"health", "smoke", "version", "healthcheck"} - {check}
    assert all(found[other]["status"] != "failed" for other in others)


def test_the_container_runtimes_healthcheck_gate_is_a_check_of_its_own() -> None:
    records = entries("released")
    deploy = next(r for r in records if r["step"] == "deploy" and r["outcome"] == "ok")
    # The virtualenv runtime journals none: not run, and the report says why.
    found = checks(build_report(records, inventory="lab"))
    assert found["healthcheck"]["status"] == NOT_RUN
    assert "virtualenv" in found["healthcheck"]["summary"]
    deploy["evidence"]["healthcheck"] = {
        "app-green": {"verdict": "healthy", "waited_s": 6.1, "containers": []},
        "app-blue": {"verdict": "none", "waited_s": 0.0, "containers": []},
    }
    found = checks(build_report(records, inventory="lab"))
    assert found["healthcheck"]["status"] == PASSED
    assert found["healthcheck"]["summary"] == (
        "app-green: healthy; app-blue: the image defines no HEALTHCHECK"
    )
    deploy["evidence"]["healthcheck"]["app-blue"]["verdict"] = "unhealthy"
    assert checks(build_report(records, inventory="lab"))["healthcheck"]["status"] == "failed"


def test_an_automatic_rollback_shows_the_critical_signal_and_needs_no_rollback(
    rolled_back: dict,
) -> None:
    found = checks(rolled_back)
    analysis = next(r for r in entries("rolled_back") if r["step"] == "analysis")
    assert rolled_back["decision"]["outcome"] == "rolled_back"
    assert found["switch"]["status"] == PASSED
    assert found["post_switch_signals"]["status"] == "failed"
    rows = {row["signal"]: row for row in rolled_back["signals"]["post_switch"]["signals"]}
    assert rows["error_rate"]["verdict"] == "critical"
    assert rows["error_rate"]["value"] == analysis["evidence"]["signals"]["error_rate"]["value"]
    assert rolled_back["rollback"]["command"] is None


def test_failed_task_names_exist_in_the_roles() -> None:
    """A renamed task must not silently turn a failed check into 'not run'."""
    names = set()
    for path in [*ROOT.glob("roles/*/tasks/*.yml"), ROOT / "playbooks" / "release.yml"]:
        names.update(re.findall(r"- name: (.+)", path.read_text()))
    assert set(FAILED_TASKS) <= names, set(FAILED_TASKS) - names


def test_an_unfinished_release_says_so() -> None:
    records = [r for r in entries("released") if r["step"] != "release"]
    report = build_report(records, inventory="lab")
    assert report["decision"]["outcome"] == "unfinished"
    assert "has not recorded its end" in report["decision"]["reason"]


# --- choosing the release ---------------------------------------------------------------


def test_the_default_release_is_the_last_release_not_a_rollback() -> None:
    journal = [
        *entries("failed_before_switch"),
        *entries("released"),
        {"release_id": "20261122T060000Z-rollback-abc", "step": "rollback", "outcome": "ok"},
    ]
    assert release_ids(journal)[-1] == entries("released")[0]["release_id"]
    assert build_report(journal)["release_id"] == entries("released")[0]["release_id"]


def test_an_unknown_release_names_the_recent_ones() -> None:
    with pytest.raises(InputError, match="recent releases: "):
        entries_of(entries("released"), "nope")


def test_an_empty_journal_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="holds no release"):
        build_report([])


# --- rendering --------------------------------------------------------------------------


def test_markdown_has_every_section_and_marks_not_run(released: dict) -> None:
    text = render_markdown(released)
    for heading in ("## Readiness", "## Timeline", "## Rollback", "## Golden signals after"):
        assert heading in text
    assert "⬜ not run" in text
    assert "bluegreen rollback -i lab" in text


def test_html_is_self_contained(rolled_back: dict) -> None:
    page = render_html(rolled_back)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<script|<link""", page)
    assert page.count("<svg") == 3
    assert 'data-check="post_switch_signals" data-status="failed"' in page


def test_html_escapes_journal_text(released: dict) -> None:
    released["decision"]["reason"] = "<script>alert(1)</script>"
    page = render_html(released)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_json_round_trips(released: dict) -> None:
    assert json.loads(render(released, "json")) == json.loads(json.dumps(released, default=str))


def test_unknown_format_is_refused(released: dict) -> None:
    with pytest.raises(InputError, match="use one of md, html, json"):
        render(released, "pdf")


def test_chart_points_are_seconds_after_the_switch(released: dict) -> None:
    points = chart_points(released, "traffic")
    series = released["signals"]["post_switch"]["series"]
    assert [p["value"] for p in points] == [s["values"]["traffic"] for s in series]
    assert all(p["t"] > 0 and p["phase"] == "post_switch" for p in points)


def test_chart_of_a_signal_without_values_says_so(crashed: dict) -> None:
    assert "no measurements of error_rate" in render_svg_chart(crashed, "error_rate")


# --- files and the command --------------------------------------------------------------


def test_write_reports_writes_the_three_formats_named_by_release(tmp_path: Path) -> None:
    written = write_reports(entries("released"), tmp_path / "reports" / "lab")
    release_id = entries("released")[0]["release_id"]
    assert [p.name for p in written] == [f"{release_id}.{fmt}" for fmt in ("md", "html", "json")]
    document = json.loads(written[2].read_text())
    assert document["inventory"] == "lab"
    assert document["rollback"]["command"] == "bluegreen rollback -i lab"


def test_read_entries_skips_a_line_cut_short(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    lines = (FIXTURES / "released.jsonl").read_text().splitlines()
    journal.write_text("\n".join(lines) + '\n{"ts": "2026-11-22T05:39')
    assert len(read_entries(journal)) == len(lines)


def test_controller_journal_is_found_or_explained(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no journal for inventory 'lab'"):
        controller_journal(tmp_path, "lab")
    folder = tmp_path / "journal" / "lab"
    folder.mkdir(parents=True)
    (folder / "sampleapp.jsonl").write_text("")
    assert controller_journal(tmp_path, "lab") == folder / "sampleapp.jsonl"
    (folder / "orders.jsonl").write_text("")
    with pytest.raises(InputError, match="name one with --app"):
        controller_journal(tmp_path, "lab")
    assert controller_journal(tmp_path, "lab", "orders") == folder / "orders.jsonl"


def test_report_command_renders_from_the_controller_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    folder = tmp_path / "state" / "journal" / "lab"
    folder.mkdir(parents=True)
    (folder / "sampleapp.jsonl").write_text((FIXTURES / "released.jsonl").read_text())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["report", "-i", "lab", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"]["outcome"] == "released"
    missing = CliRunner().invoke(cli.app, ["report", "nope", "-i", "lab"])
    assert missing.exit_code == 2 and "is not in the journal" in missing.output


def test_migrations_journaled_on_their_own_survive_a_failed_deploy() -> None:
    records = entries("failed_before_switch")
    migration = next(r for r in entries("released") if r["step"] == "deploy")["evidence"][
        "migration"
    ]
    deploy_at = next(i for i, r in enumerate(records) if r["step"] == "deploy")
    migrate = {
        **records[deploy_at],
        "step": "migrate",
        "outcome": "ok",
        "host": None,
        "message": "schema 0001 -> 0001",
        "evidence": {"migration": migration},
    }
    found = checks(build_report([*records[:deploy_at], migrate, *records[deploy_at:]]))
    assert found["migrations"]["status"] == PASSED
    assert found["migrations"]["step"] == "migrate"
    assert found["health"]["status"] == "failed"


def test_every_part_of_the_report_gives_the_same_count_of_measurements() -> None:
    """The readiness check counts the decision's measurements; the signals sections said
    "over 0 measurements" when a window came without a series point."""
    records = entries("released")
    for record in records:
        if record.get("step") == "analysis" and "decision" in (record.get("evidence") or {}):
            record["evidence"]["series"] = record["evidence"]["series"][:0]
            counted = record["evidence"]["decision"]["measurements"]
    report = build_report(records, inventory="lab")

    summary = checks(report)["post_switch_signals"]["summary"]
    assert f"after {counted} measurements" in summary, summary
    assert f"over {counted} measurements" in render_markdown(report)
    assert f"{counted} measurements.</p>" in render_html(report)


def test_a_rollback_on_the_comparison_with_the_old_colour_shows_both_sides() -> None:
    # A lab release of 2.0.10+lag70.after200req: 70 % slower in the service than the old
    # colour was before the switch, under every fixed threshold.
    records = entries("slower_than_baseline")
    report = build_report(records, inventory="lab")
    analysis = next(r for r in records if r["step"] == "analysis")["evidence"]["comparison"]

    block = report["signals"]["post_switch"]
    comparison = block["comparison"]
    assert comparison["before_switch"] is True
    assert comparison["old"]["latency_p95"] == analysis["baseline"]["latency_p95"]
    assert comparison["new"]["latency_p95"] == analysis["new"]["latency_p95"]
    rows = {row["signal"]: row for row in comparison["signals"]}
    assert rows["latency_p95_ratio"]["verdict"] == "critical"
    assert {row["signal"]: row["verdict"] for row in block["signals"]}["latency_p95"] == "ok"

    markdown = render_markdown(report)
    ratio = f"{analysis['latency_p95_ratio']['value']:.4g}"
    assert f"| latency_p95_ratio | {ratio} factor |" in markdown
    old_ms = f"p95 {analysis['baseline']['latency_p95'] * 1000:.0f} ms"
    new_ms = f"p95 {analysis['new']['latency_p95'] * 1000:.0f} ms"
    assert old_ms in markdown and new_ms in markdown
    assert "before the switch" in markdown
    assert "latency_p95_ratio" in render_html(report)


def test_a_release_without_a_comparison_shows_none(released: dict) -> None:
    assert released["signals"]["post_switch"]["comparison"] is None
    assert "Compared with" not in render_markdown(released)


def test_each_canary_step_is_evidence_of_the_canary_check() -> None:
    report = build_report(entries("canary_released"), inventory="lab-fleet")
    canary = checks(report)["canary"]

    assert canary["status"] == "passed"
    assert [step["percent"] for step in canary["evidence"]["steps"]] == [10, 50]
    assert "Mann-Whitney U" in canary["summary"] and "Fisher's exact test" in canary["summary"]
    assert checks(report)["switch"]["status"] == "passed"


def test_a_canary_stopped_at_its_first_step_fails_its_check_and_never_switches() -> None:
    report = build_report(entries("canary_stopped"), inventory="lab-fleet")
    canary = checks(report)["canary"]

    assert canary["status"] == "failed"
    assert canary["summary"].startswith("fail: step 10 %")
    assert "slower beyond chance" in canary["summary"]
    assert checks(report)["switch"]["status"] == "not run"
    assert checks(report)["post_switch_signals"]["status"] == "not run"


def test_a_release_without_a_canary_leaves_its_check_not_run(released: dict) -> None:
    assert checks(released)["canary"]["status"] == "not run"


def test_an_encrypted_snapshot_says_so_in_the_backup_check() -> None:
    records = entries("released")
    for record in records:
        if record["step"] == "snapshot":
            record["evidence"]["encryption"] = {"tool": "age", "recipients": ["age1a", "age1b"]}

    backup = checks(build_report(records, inventory="lab"))["backup"]

    assert backup["status"] == PASSED
    assert "encrypted with age to 2 recipient(s); verified by a real read" in backup["summary"]
    assert backup["evidence"]["encryption"]["recipients"] == ["age1a", "age1b"]
