"""The release's state machine (module_utils/release_flow.py and the release_flow module).

Two tables: every step's rule against the records that decide it, and every failure point
of a release walked through the whole machine to the steps that still run, the outcome
(release_outcome) and the CLI's exit code. docs/architecture.md shows the second table.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import release_flow
import yaml
from ansible.module_utils.release_flow import (
    COMMAND_RULES,
    COMMAND_STEPS,
    RELEASE_STEPS,
    RunRecord,
    analysis_failure,
    maintenance_report,
    maintenance_request,
    pauses,
    record_from_facts,
    record_from_params,
    release_plan,
    restore_failed_message,
    restored_failure_message,
    rollback_target_refusal,
    rolls_back,
    rules_table,
    step_decision,
    verify_report,
)
from ansible.module_utils.release_outcome import CommandFacts, Failure, release_outcome

from bluegreen.cli import OUTCOME_EXIT_CODES, ExitCode

ROOT = Path(__file__).resolve().parents[2]

PG_RECORD = RunRecord()
SQLITE_WINDOW = RunRecord(sqlite=True, installed=True, window=True, maintenance_was_on=False)


def failed(record: RunRecord, step: str) -> RunRecord:
    return replace(record, failed_step=step)


STEP_TABLE = [
    # step, record, runs, reason when it does not
    ("preflight", failed(PG_RECORD, "preflight"), True, ""),
    ("lock", PG_RECORD, True, ""),
    ("lock", failed(PG_RECORD, "preflight"), False, "an earlier step failed"),
    ("recover_find", failed(PG_RECORD, "lock"), False, "an earlier step failed"),
    ("lb", PG_RECORD, True, ""),
    ("database", failed(PG_RECORD, "lb"), False, "an earlier step failed"),
    ("plan", PG_RECORD, True, ""),
    ("snapshot", PG_RECORD, True, ""),
    ("snapshot", replace(PG_RECORD, unchanged=True), False, "the version is live already"),
    (
        "snapshot",
        SQLITE_WINDOW,
        False,
        "the database is SQLite (snapshot taken inside the window)",
    ),
    ("sqlite_plan", PG_RECORD, False, "the database is not SQLite"),
    ("sqlite_plan", SQLITE_WINDOW, True, ""),
    ("sqlite_plan", replace(SQLITE_WINDOW, unchanged=True), False, "the version is live already"),
    ("window_open", SQLITE_WINDOW, True, ""),
    (
        "window_open",
        replace(SQLITE_WINDOW, window=False),
        False,
        "the migration needs no maintenance window",
    ),
    ("window_open", failed(SQLITE_WINDOW, "deploy"), False, "an earlier step failed"),
    ("window_snapshot", replace(SQLITE_WINDOW, window=False), True, ""),
    ("window_snapshot", PG_RECORD, False, "the release was not installed for a SQLite migration"),
    ("window_migrate", SQLITE_WINDOW, True, ""),
    ("window_migrate", failed(SQLITE_WINDOW, "maintenance"), False, "an earlier step failed"),
    ("window_restore", failed(SQLITE_WINDOW, "migrate"), True, ""),
    ("window_restore", SQLITE_WINDOW, False, "no migration failed inside the window"),
    (
        "window_restore",
        replace(failed(SQLITE_WINDOW, "migrate"), migration_started=False),
        False,
        "the migration failed before it touched the database",
    ),
    (
        "window_restore",
        failed(replace(SQLITE_WINDOW, window=False), "migrate"),
        False,
        "the migration needs no maintenance window",
    ),
    ("window_close", SQLITE_WINDOW, True, ""),
    ("window_close", failed(SQLITE_WINDOW, "migrate"), True, ""),
    (
        "window_close",
        replace(SQLITE_WINDOW, maintenance_was_on=True),
        False,
        "maintenance mode was on before this release",
    ),
    (
        "window_close",
        replace(failed(SQLITE_WINDOW, "migrate"), keep_maintenance=True),
        False,
        "the restore failed, so maintenance mode stays on",
    ),
    ("idle_restore", failed(SQLITE_WINDOW, "migrate"), True, ""),
    ("idle_restore", SQLITE_WINDOW, False, "no step failed"),
    (
        "idle_restore",
        failed(PG_RECORD, "deploy"),
        False,
        "the deploy step puts the idle colour back itself",
    ),
    ("deploy", PG_RECORD, True, ""),
    ("deploy", replace(PG_RECORD, unchanged=True), False, "the version is live already"),
    ("deploy_restore", PG_RECORD, False, "the deploy did not fail"),
    ("deploy_restore", replace(PG_RECORD, failed_step="deploy"), True, ""),
    ("deploy_restore", replace(PG_RECORD, failed_step="lb"), False, "the deploy did not fail"),
    (
        "deploy_restore",
        replace(SQLITE_WINDOW, failed_step="deploy"),
        False,
        "a SQLite service runs on one host, which its failed step put back",
    ),
    ("frontend", PG_RECORD, True, ""),
    ("frontend", replace(PG_RECORD, failed_step="deploy"), False, "an earlier step failed"),
    ("frontend", replace(PG_RECORD, unchanged=True), False, "the version is live already"),
    ("pre_switch_analysis", PG_RECORD, True, ""),
    (
        "pre_switch_analysis",
        replace(PG_RECORD, pre_switch_analysis=False),
        False,
        "pre-switch analysis is off",
    ),
    ("hold", replace(PG_RECORD, hold=True), True, ""),
    ("hold", PG_RECORD, False, "no hold before the switch was asked for"),
    (
        "hold",
        failed(replace(PG_RECORD, hold=True), "pre_switch_analysis"),
        False,
        "an earlier step failed",
    ),
    (
        "switch",
        replace(PG_RECORD, hold=True, held=True),
        False,
        "the release is held before its switch for a person",
    ),
    (
        "canary",
        replace(PG_RECORD, canary=True, served_before=True, held=True),
        False,
        "the release is held before its switch for a person",
    ),
    ("canary", replace(PG_RECORD, canary=True, served_before=True), True, ""),
    ("canary", PG_RECORD, False, "no canary steps were asked for"),
    (
        "canary",
        replace(PG_RECORD, canary=True, served_before=False),
        False,
        "a first release: no colour serves users to compare with",
    ),
    (
        "canary",
        failed(replace(PG_RECORD, canary=True, served_before=True), "deploy"),
        False,
        "an earlier step failed",
    ),
    ("switch", failed(PG_RECORD, "pre_switch_analysis"), False, "an earlier step failed"),
    (
        "switch",
        failed(replace(PG_RECORD, canary=True, served_before=True), "canary"),
        False,
        "an earlier step failed",
    ),
    ("analysis", replace(PG_RECORD, switched=True), True, ""),
    ("analysis", PG_RECORD, False, "traffic did not move"),
    (
        "analysis",
        replace(PG_RECORD, switched=True, analysis=False),
        False,
        "post-switch analysis is off",
    ),
    ("auto_rollback", failed(replace(PG_RECORD, switched=True), "analysis"), True, ""),
    (
        "auto_rollback",
        failed(replace(PG_RECORD, switched=True), "switch"),
        False,
        "the post-switch analysis did not fail",
    ),
    ("finish", failed(PG_RECORD, "switch"), True, ""),
]


@pytest.mark.parametrize(("step", "record", "runs", "reason"), STEP_TABLE)
def test_each_step_runs_by_its_rule(step: str, record: RunRecord, runs: bool, reason: str) -> None:
    decision = step_decision(step, record)
    assert (decision.run, decision.reason) == (runs, reason)


def test_every_step_has_a_rule_and_a_row() -> None:
    for command, steps in COMMAND_STEPS.items():
        assert sorted(steps) == sorted(COMMAND_RULES[command]), command
    tested = {row[0] for row in STEP_TABLE} | {row[0] for row in RECOVER_TABLE}
    assert tested == set(RELEASE_STEPS)


def test_an_unknown_step_is_refused_naming_the_steps() -> None:
    with pytest.raises(
        ValueError, match="unknown step 'deploi' of release; steps: preflight, lock"
    ):
        step_decision("deploi", PG_RECORD)
    with pytest.raises(ValueError, match="unknown step 'deploy' of backup; steps: lock, snapshot"):
        step_decision("deploy", PG_RECORD, "backup")


@pytest.mark.parametrize(
    ("step", "record", "runs"),
    [
        ("lock", PG_RECORD, True),
        ("snapshot", replace(PG_RECORD, sqlite=True, unchanged=True), True),
        ("snapshot", failed(PG_RECORD, "lock"), False),
        ("finish", failed(PG_RECORD, "snapshot"), True),
    ],
)
def test_a_backup_snapshots_any_database_unless_its_lock_failed(
    step: str, record: RunRecord, runs: bool
) -> None:
    assert step_decision(step, record, "backup").run is runs


# The journal's names for the failures of the window's steps.
RECORDED_AS = {
    "window_open": "maintenance",
    "window_migrate": "migrate",
    "sqlite_plan": "deploy",
    "recover_find": "recover",
}


def succeeded(record: RunRecord, step: str, needs_window: bool) -> RunRecord:
    """What a step that succeeded adds to the record (the facts its play sets)."""
    effects: dict[str, dict[str, bool]] = {
        "sqlite_plan": {"installed": True, "window": needs_window},
        "window_open": {"maintenance_was_on": False},
        "switch": {"switched": True},
        "hold": {"held": True},
    }
    return replace(record, **effects.get(step, {}))


def walk(
    record: RunRecord,
    fail_at: str | None,
    needs_window: bool = True,
    switch_back_fails: bool = False,
) -> dict[str, Any]:
    """Run the machine: every step asks its rule; the failing step records its failure
    (a switch that fails is cut short: traffic moved on some lb and was sent back)."""
    ran: list[str] = []
    switched, switched_back = False, None
    for step in RELEASE_STEPS:
        if not step_decision(step, record).run:
            continue
        ran.append(step)
        if step == fail_at:
            record = replace(record, failed_step=RECORDED_AS.get(step, step))
            # A failed canary step, like a switch cut short, sends its share back.
            if step in ("switch", "canary"):
                switched, switched_back = True, not switch_back_fails
            continue
        record = succeeded(record, step, needs_window)
        switched = switched or step == "switch"
        if step == "auto_rollback":
            switched_back = not switch_back_fails
    facts = CommandFacts(
        command="release",
        failure=Failure(step=record.failed_step) if record.failed else None,
        switched=switched,
        switched_back=switched_back,
        unchanged=record.unchanged,
        # The post-switch analysis passed where it ran (its verdicts have tests of their own).
        analysis={"decision": {"action": "pass", "verdict": "ok"}} if "analysis" in ran else None,
        # The hold step makes the release end held (steps/hold.yml sets it).
        success_outcome="held" if record.held else "released",
    )
    outcome = release_outcome(facts)
    return {"ran": ran, "outcome": outcome, "exit": OUTCOME_EXIT_CODES["release"][outcome]}


PG = RunRecord()
SQLITE = RunRecord(sqlite=True)
CANARY = RunRecord(canary=True, served_before=True)
PG_STEPS = ["preflight", "lock", "recover_find", "lb", "database", "plan", "snapshot", "deploy"]
PG_SWITCH = [*PG_STEPS, "frontend", "pre_switch_analysis", "switch"]
CANARY_SWITCH = [*PG_STEPS, "frontend", "pre_switch_analysis", "canary", "switch"]
SQLITE_STEPS = ["preflight", "lock", "recover_find", "lb", "database", "plan", "sqlite_plan"]
WINDOW = ["window_open", "window_snapshot", "window_migrate"]
AFTER_DEPLOY = ["deploy", "frontend", "pre_switch_analysis", "switch", "analysis", "finish"]

FAILURE_TABLE = [
    # record, failing step, whether migrations need a window, steps run, outcome, exit code
    (PG, None, True, [*PG_SWITCH, "analysis", "finish"], "released", ExitCode.OK),
    (replace(PG, unchanged=True), None, True, [*PG_STEPS[:6], "finish"], "unchanged", 0),
    (PG, "preflight", True, ["preflight", "finish"], "failed_before_switch", 3),
    (PG, "lock", True, ["preflight", "lock", "finish"], "failed_before_switch", 3),
    (PG, "recover_find", True, [*PG_STEPS[:3], "finish"], "failed_before_switch", 3),
    (PG, "lb", True, [*PG_STEPS[:4], "finish"], "failed_before_switch", 3),
    (PG, "database", True, [*PG_STEPS[:5], "finish"], "failed_before_switch", 3),
    (PG, "plan", True, [*PG_STEPS[:6], "finish"], "failed_before_switch", 3),
    (PG, "snapshot", True, [*PG_STEPS[:7], "finish"], "failed_before_switch", 3),
    (PG, "deploy", True, [*PG_STEPS, "deploy_restore", "finish"], "failed_before_switch", 3),
    (PG, "frontend", True, [*PG_STEPS, "frontend", "finish"], "failed_before_switch", 3),
    (PG, "pre_switch_analysis", True, [*PG_SWITCH[:-1], "finish"], "failed_before_switch", 3),
    (PG, "switch", True, [*PG_SWITCH, "finish"], "rolled_back", 4),
    (CANARY, None, True, [*CANARY_SWITCH, "analysis", "finish"], "released", 0),
    (replace(CANARY, hold=True), None, True, [*PG_SWITCH[:-1], "hold", "finish"], "held", 5),
    (CANARY, "canary", True, [*CANARY_SWITCH[:-1], "finish"], "rolled_back", 4),
    (
        replace(CANARY, served_before=False),
        None,
        True,
        [*PG_SWITCH, "analysis", "finish"],
        "released",
        0,
    ),
    (PG, "analysis", True, [*PG_SWITCH, "analysis", "auto_rollback", "finish"], "rolled_back", 4),
    (SQLITE, None, True, [*SQLITE_STEPS, *WINDOW, "window_close", *AFTER_DEPLOY], "released", 0),
    (SQLITE, None, False, [*SQLITE_STEPS, "window_snapshot", *AFTER_DEPLOY], "released", 0),
    (SQLITE, "sqlite_plan", True, [*SQLITE_STEPS, "finish"], "failed_before_switch", 3),
    (
        SQLITE,
        "window_open",
        True,
        [*SQLITE_STEPS, "window_open", "idle_restore", "finish"],
        "failed_before_switch",
        3,
    ),
    (
        SQLITE,
        "window_snapshot",
        True,
        [*SQLITE_STEPS, "window_open", "window_snapshot", "window_close", "idle_restore", "finish"],
        "failed_before_switch",
        3,
    ),
    (
        SQLITE,
        "window_migrate",
        True,
        [*SQLITE_STEPS, *WINDOW, "window_restore", "window_close", "idle_restore", "finish"],
        "failed_before_switch",
        3,
    ),
    (
        SQLITE,
        "deploy",
        False,
        [*SQLITE_STEPS, "window_snapshot", "deploy", "finish"],
        "failed_before_switch",
        3,
    ),
    (
        replace(PG, recovering=True, recover_action="restore_idle"),
        None,
        True,
        [*PG_STEPS[:3], "recover_idle", "recover_record", *PG_SWITCH[3:], "analysis", "finish"],
        "released",
        0,
    ),
    (
        replace(
            SQLITE,
            recovering=True,
            recover_action="restore_idle",
            recover_close_window=True,
            recover_restore=True,
        ),
        None,
        True,
        [
            *SQLITE_STEPS[:3],
            "recover_restore",
            "recover_close",
            "recover_idle",
            "recover_record",
            *SQLITE_STEPS[3:],
            *WINDOW,
            "window_close",
            *AFTER_DEPLOY,
        ],
        "released",
        0,
    ),
    (
        replace(PG, recovering=True, recover_action="resume", recover_rollback=True),
        None,
        True,
        [
            *PG_STEPS[:3],
            "recover_judge",
            "recover_rollback",
            "recover_record",
            *PG_SWITCH[3:],
            "analysis",
            "finish",
        ],
        "released",
        0,
    ),
    (
        SQLITE,
        "switch",
        True,
        [*SQLITE_STEPS, *WINDOW, "window_close", *AFTER_DEPLOY[:4], "finish"],
        "rolled_back",
        4,
    ),
]


@pytest.mark.parametrize(
    ("record", "fail_at", "needs_window", "ran", "outcome", "exit_code"), FAILURE_TABLE
)
def test_each_failure_point_ends_in_its_outcome_and_exit_code(
    record: RunRecord,
    fail_at: str | None,
    needs_window: bool,
    ran: list[str],
    outcome: str,
    exit_code: int,
) -> None:
    walked = walk(record, fail_at, needs_window)
    assert walked == {"ran": ran, "outcome": outcome, "exit": exit_code}


def test_a_switch_whose_send_back_fails_ends_failed_with_exit_1() -> None:
    assert walk(PG, "switch", switch_back_fails=True)["exit"] == ExitCode.FAILED
    assert walk(PG, "analysis", switch_back_fails=True)["outcome"] == "failed"


def test_the_record_reads_the_plays_facts_with_their_defaults() -> None:
    assert record_from_params({}) == RunRecord()
    record = record_from_params({"failure": {"step": "deploy", "msg": "x"}, "sqlite": True})
    assert (record.failed_step, record.sqlite, record.window) == ("deploy", True, False)
    assert record_from_params({"failure": None, "switched": None}).failed is False


DEPLOY = "deploy 2.0.0 to green, then move traffic from blue"
NOTHING = "nothing to do: 2.0.0 is live on blue already"
PLAN_TABLE = [
    # live states, reconfigured, unchanged, live version, message
    ([], [], False, "", DEPLOY),
    (
        [{"version": None, "state": "inactive"}],
        [],
        False,
        "",
        DEPLOY,
    ),
    (
        [{"version": "1.0.0", "state": "active"}],
        [],
        False,
        "1.0.0",
        DEPLOY,
    ),
    (
        [{"version": "2.0.0", "state": "active"}] * 2,
        [],
        True,
        "2.0.0",
        NOTHING,
    ),
    (
        [{"version": "2.0.0", "state": "failed"}],
        [],
        False,
        "2.0.0",
        DEPLOY,
    ),
    (
        [{"version": "2.0.0", "state": "active"}, {"version": "1.0.0", "state": "active"}],
        [],
        False,
        "2.0.0",
        DEPLOY,
    ),
    (
        [{"version": "2.0.0", "state": "active"}],
        ["app2", "app1"],
        False,
        "2.0.0",
        DEPLOY + " (its configuration changed on app1, app2)",
    ),
]


@pytest.mark.parametrize(("states", "reconfigured", "unchanged", "live", "message"), PLAN_TABLE)
def test_the_plan_says_whether_the_version_is_live_already(
    states: list[dict[str, Any]], reconfigured: list[str], unchanged: bool, live: str, message: str
) -> None:
    plan = release_plan("2.0.0", "blue", "green", states, reconfigured)
    assert (plan.unchanged, plan.live_version, plan.message) == (unchanged, live, message)


ANALYSIS_TABLE = [
    # decision, on_warning, on_inconclusive, rolls back
    ({"action": "pass", "verdict": "healthy"}, "rollback", "rollback", False),
    ({"action": "fail", "verdict": "critical"}, "proceed", "proceed", True),
    ({"action": "fail", "verdict": "inconclusive"}, "proceed", "proceed", False),
    ({"action": "fail", "verdict": "inconclusive"}, "proceed", "rollback", True),
    ({"action": "pass", "verdict": "inconclusive"}, "proceed", "rollback", False),
    ({"action": "pass", "verdict": "warning"}, "proceed", "proceed", False),
    ({"action": "pass", "verdict": "warning"}, "rollback", "proceed", True),
    ({"action": "fail", "verdict": "warning"}, "rollback", "proceed", True),
]


@pytest.mark.parametrize(("decision", "warning", "inconclusive", "back"), ANALYSIS_TABLE)
def test_an_analysis_sends_traffic_back_by_its_policy(
    decision: dict[str, str], warning: str, inconclusive: str, back: bool
) -> None:
    assert rolls_back(decision, warning, inconclusive) is back


def test_the_analysis_failure_names_every_bad_signal() -> None:
    result = {
        "decision": {"action": "fail", "verdict": "critical", "reason": "errors 30% > 5%"},
        "signals": {
            "errors": {"verdict": "critical", "reason": "30% > 5%"},
            "latency": {"verdict": "healthy", "reason": "fine"},
            "traffic": {"verdict": "inconclusive", "reason": "no requests"},
        },
    }
    assert analysis_failure(result, "green", "proceed", "proceed") == (
        "post-switch analysis of green failed (critical): errors 30% > 5%; "
        "errors: 30% > 5%; traffic: no requests"
    )
    assert analysis_failure({"decision": {"action": "pass"}}, "green", "proceed", "proceed") == ""


def test_the_analysis_failure_names_a_bad_comparison_with_the_old_colour() -> None:
    result = {
        "decision": {"action": "fail", "verdict": "critical", "reason": "1 critical"},
        "signals": {"latency_p95": {"verdict": "ok", "reason": "165 ms"}},
        "comparison": {
            "latency_p95_ratio": {"verdict": "critical", "reason": "p95 latency new/old 1.6x"},
            "error_rate_diff": {"verdict": "ok", "reason": "0"},
            "baseline": {"colour": "blue"},
        },
    }
    assert analysis_failure(result, "green", "proceed", "proceed") == (
        "post-switch analysis of green failed (critical): 1 critical; "
        "latency_p95_ratio: p95 latency new/old 1.6x"
    )


def test_the_restore_messages_say_what_happened_to_the_data() -> None:
    assert restored_failure_message("migrate failed", "s1") == (
        "migrate failed -- the database was restored from snapshot s1, taken inside the"
        " maintenance window: no acknowledged write was lost"
    )
    assert "nothing was restored" in restored_failure_message("migrate failed", None)
    assert restore_failed_message("m", "s1", " disk full\n") == (
        "m -- restoring snapshot s1 also failed: disk full; maintenance mode stays on: restore"
        " it with `bluegreen restore s1 --yes`, then `bluegreen maintenance off`"
    )


def test_the_module_decides_a_step_and_never_changes_anything(run_module) -> None:
    result = run_module(
        release_flow.main,
        {"decide": "step", "step": "snapshot", "record": {"unchanged": True}},
        check_mode=True,
    )
    assert (result["changed"], result["run"]) == (False, False)
    assert result["reason"] == "the version is live already"


def test_the_module_plans_and_never_logs_the_database_url(run_module) -> None:
    url = "sqlite:////var/lib/app/secret-name.db"
    result = run_module(
        release_flow.main,
        {
            "decide": "plan",
            "version": "2.0.0",
            "live_colour": "blue",
            "idle_colour": "green",
            "live_states": [{"version": "1.0.0", "state": "active"}],
            "database_url": url,
        },
    )
    assert result["sqlite"] is True and result["unchanged"] is False
    assert url not in str(result)


def test_the_module_refuses_a_step_decision_without_a_step(run_module) -> None:
    result = run_module(release_flow.main, {"decide": "step"})
    assert result["failed"] and "step" in result["msg"]


ROLLBACK = RunRecord()
IRREVERSIBLE_PLAN = {"direction": "downgrade", "pending": [{"irreversible": "drops a column"}]}
ROLLBACK_TABLE = [
    # step, record params, runs, reason
    ("lock", {}, True, ""),
    ("lock", {"data_rollback": True}, False, "the data rollback does this step itself"),
    ("rollback_switch", {}, True, ""),
    ("rollback_switch", {"recover_action": "close"}, True, ""),
    (
        "rollback_switch",
        {"recover_action": "rollback"},
        False,
        "recovering the interrupted release was the rollback",
    ),
    ("rollback_switch", {"recover_only": True}, False, "only the stopped command is undone"),
    ("rollback_target", {"read_targets": True}, True, ""),
    (
        "rollback_target",
        {},
        False,
        "no version is refused, or the service names its version for the precheck",
    ),
    (
        "rollback_target",
        {"read_targets": True, "data_rollback": True},
        False,
        "the data rollback does this step itself",
    ),
    # Without --with-data, rollback_data.yml's plays match no host.
    *(
        (step, {}, False, "only a rollback with --with-data moves the data")
        for step in ("data_options", "data_lock", "data_hosts", "data_plan", "data_way")
    ),
    ("data_plan", {"data_rollback": True}, False, "no revision of the previous release is known"),
    ("data_plan", {"data_rollback": True, "target_revision_known": True}, True, ""),
    (
        "data_plan",
        {"data_rollback": True, "target_revision_known": True, "target_after_live": True},
        False,
        "the colour to go back to was deployed after the live one",
    ),
    (
        "data_snapshot",
        {"data_rollback": True, "data_plan": {"direction": "downgrade", "pending": [{}]}},
        False,
        "a downgrade takes the schema back",
    ),
    ("data_snapshot", {"data_rollback": True, "data_plan": IRREVERSIBLE_PLAN}, True, ""),
    (
        "data_snapshot",
        {"data_rollback": True, "data_plan": {"direction": "downgrade"}, "method": "restore"},
        True,
        "",
    ),
    (
        "data_snapshot",
        {"data_rollback": True, "data_plan": {"direction": "none"}, "method": "restore"},
        False,
        "a downgrade takes the schema back",
    ),
    ("data_quiesce", {}, False, "no way back was chosen"),
    (
        "data_quiesce",
        {"data_mode": "restore", "refused": True},
        False,
        "the data rollback was refused",
    ),
    ("data_quiesce", {"data_mode": "switch"}, True, ""),
    ("data_downgrade", {"data_mode": "restore"}, False, "the data does not go back by downgrade"),
    ("data_downgrade", {"data_mode": "downgrade"}, True, ""),
    (
        "data_restore",
        {"data_mode": "restore", "failure": {"step": "maintenance"}},
        False,
        "an earlier step failed",
    ),
    ("data_healthy", {"data_mode": "restore"}, True, ""),
    (
        "data_switch",
        {"data_mode": "restore", "quiesced": True, "failure": {"step": "restore"}},
        True,
        "",
    ),
    ("data_switch", {"data_mode": "restore"}, False, "maintenance mode was never turned on"),
    (
        "data_switch",
        {"data_mode": "downgrade", "quiesced": True},
        False,
        "the data does not go back by restore",
    ),
]


@pytest.mark.parametrize(("step", "params", "runs", "reason"), ROLLBACK_TABLE)
def test_each_rollback_step_runs_by_its_rule(
    step: str, params: dict[str, Any], runs: bool, reason: str
) -> None:
    decision = step_decision(step, record_from_params(params), "rollback")
    assert (decision.run, decision.reason) == (runs, reason)


RESTORE_TABLE = [
    # step, record params, runs, reason
    ("restore_read", {"listing": True}, True, ""),
    ("restore_refuse", {"failure": {"step": "snapshot"}}, False, "an earlier step failed"),
    (
        "restore_quiesce",
        {"listing": True, "confirmed": True},
        False,
        "the snapshots are only listed",
    ),
    ("restore_quiesce", {}, False, "the restore was not confirmed"),
    ("restore_quiesce", {"confirmed": True}, True, ""),
    (
        "restore_data",
        {"confirmed": True, "failure": {"step": "maintenance"}},
        False,
        "an earlier step failed",
    ),
    (
        "restore_healthy",
        {"confirmed": True, "quiesced": True, "failure": {"step": "restore"}},
        True,
        "",
    ),
    ("restore_healthy", {"confirmed": True}, False, "the live colour was never read"),
    ("restore_resume", {"confirmed": True, "maintenance_was_on": False}, True, ""),
    ("restore_resume", {"confirmed": True}, False, "maintenance mode was on before this restore"),
    (
        "restore_resume",
        {"confirmed": True, "maintenance_was_on": False, "keep_maintenance": True},
        False,
        "the live colour is unhealthy, so maintenance mode stays on",
    ),
]


@pytest.mark.parametrize(("step", "params", "runs", "reason"), RESTORE_TABLE)
def test_each_restore_step_runs_by_its_rule(
    step: str, params: dict[str, Any], runs: bool, reason: str
) -> None:
    decision = step_decision(step, record_from_params(params), "restore")
    assert (decision.run, decision.reason) == (runs, reason)


RECOVER_TABLE = [
    # step, record params, runs, reason
    ("recover_find", {}, True, ""),
    ("recover_find", {"data_rollback": True}, False, "the data rollback does this step itself"),
    ("recover_restore", {"recover_restore": True}, True, ""),
    ("recover_restore", {}, False, "no interrupted migration to undo"),
    ("recover_close", {"recover_close_window": True}, True, ""),
    (
        "recover_close",
        {"recover_close_window": True, "failure": {"step": "recover"}},
        False,
        "an earlier step failed",
    ),
    ("recover_idle", {"recover_action": "restore_idle"}, True, ""),
    ("recover_idle", {"recover_action": "rollback"}, True, ""),
    (
        "recover_idle",
        {"recover_action": "resume"},
        False,
        "no interrupted release to restore_idle or rollback",
    ),
    ("recover_back", {"recover_action": "rollback"}, True, ""),
    ("recover_judge", {"recover_action": "resume"}, True, ""),
    (
        "recover_judge",
        {"recover_action": "resume", "analysis": False},
        False,
        "post-switch analysis is off",
    ),
    (
        "recover_rollback",
        {"recover_action": "resume"},
        False,
        "the resumed release's signals are good",
    ),
    ("recover_rollback", {"recover_action": "resume", "recover_rollback": True}, True, ""),
    ("recover_record", {}, False, "no interrupted release was found"),
    ("recover_record", {"recovering": True, "failure": {"step": "recover"}}, True, ""),
]


@pytest.mark.parametrize("command", ["release", "rollback"])
@pytest.mark.parametrize(("step", "params", "runs", "reason"), RECOVER_TABLE)
def test_each_recovery_step_runs_by_its_rule(
    command: str, step: str, params: dict[str, Any], runs: bool, reason: str
) -> None:
    decision = step_decision(step, record_from_params(params), command)
    assert (decision.run, decision.reason) == (runs, reason)


def failure_table_rows() -> list[str]:
    """FAILURE_TABLE as the Markdown rows docs/architecture.md shows."""
    rows = []
    for record, fail_at, needs_window, _ran, _outcome, _exit in FAILURE_TABLE:
        walked = walk(record, fail_at, needs_window)
        facts = [
            name
            for name, value in sorted(vars(record).items())
            if value != getattr(RunRecord(), name)
        ]
        if not needs_window and record.sqlite:
            facts.append("no migration pending")
        rows.append(
            f"| {', '.join(facts) or 'PostgreSQL'} | {fail_at or '-'} |"
            f" {' '.join(walked['ran'])} | {walked['outcome']} | {int(walked['exit'])} |"
        )
    return rows


def test_the_architecture_doc_shows_every_rule_and_every_failure_point() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for command in COMMAND_STEPS:
        assert rules_table(command) in doc, f"docs/architecture.md: rules of {command}"
    missing = [row for row in failure_table_rows() if row not in doc]
    assert not missing, "docs/architecture.md lacks:\n" + "\n".join(missing)


def test_the_architecture_doc_lists_every_play_of_every_playbook() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        f"{path.name}: {play['name']}"
        for path in sorted((ROOT / "playbooks").glob("*.yml"))
        for play in yaml.safe_load(path.read_text())
        if f"- {play['name']}" not in doc
    ]
    assert not missing, "docs/architecture.md does not list these plays:\n" + "\n".join(missing)


MAINTENANCE_TABLE = [
    # on, load balancers' results, failure, outcome, message
    (
        True,
        {
            "lb1": {"changed": True, "retry_after": 300},
            "lb2": {"changed": True, "retry_after": 300},
        },
        None,
        "maintenance_on",
        "maintenance mode is on on lb1, lb2: users get 503 with Retry-After 300; health and"
        " metrics still reach the live colour",
    ),
    (
        False,
        {"lb1": {"changed": True}},
        None,
        "maintenance_off",
        "maintenance mode is off on lb1: users reach the live colour again",
    ),
    (
        True,
        {"lb1": {"changed": False, "retry_after": 300}},
        None,
        "maintenance_on",
        "maintenance mode was on already on lb1; nothing changed",
    ),
    (
        True,
        {"lb1": None},
        {"step": "maintenance", "host": "lb1", "msg": "the site does not check the flag"},
        "failed",
        "the site does not check the flag",
    ),
    (
        False,
        {"lb1": None},
        {"step": "lock", "host": "lb1", "msg": "held by release r1"},
        "failed",
        "maintenance mode was not turned off: lock failed on lb1: held by release r1",
    ),
]


@pytest.mark.parametrize(("on", "lbs", "failure", "outcome", "message"), MAINTENANCE_TABLE)
def test_the_maintenance_toggle_reports_where_users_are(
    on: bool,
    lbs: dict[str, Any],
    failure: dict[str, str] | None,
    outcome: str,
    message: str,
) -> None:
    report = maintenance_report(on, lbs, failure).as_dict()
    assert (report["outcome"], report["message"]) == (outcome, message)
    assert report["state"] == ("on" if on else "off")
    assert report["journal_outcome"] == ("failed" if outcome == "failed" else "ok")


def test_verify_reports_the_verdict_and_no_decision_as_inconclusive() -> None:
    decision = {"verdict": "ok", "action": "pass", "reason": "2 measurements within the limits"}
    assert verify_report({"decision": decision}, "blue") == {
        "outcome": "ok",
        "message": "blue: pass (ok): 2 measurements within the limits",
    }
    for nothing in (None, {}, {"decision": {}}, {"decision": None}):
        report = verify_report(nothing, "green")
        assert report["outcome"] == "inconclusive", nothing
        assert report["message"] == "green: none (inconclusive): the analysis returned no decision"


@pytest.mark.parametrize(
    ("asked", "state"),
    [("on", "on"), ("OFF", "off"), (" on ", "on"), (True, "on"), (False, "off"),
     ("", None), (None, None), ("maybe", None), (1, None)],
)  # fmt: skip
def test_maintenance_reads_on_and_off_as_text_or_yaml_booleans(asked: Any, state: str | None):
    assert maintenance_request(asked) == state


def filters() -> dict[str, Any]:
    """The filters of filter_plugins/release_flow.py, loaded as Ansible loads them."""
    path = ROOT / "filter_plugins" / "release_flow.py"
    spec = importlib.util.spec_from_file_location("bluegreen_filter_release_flow", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin.FilterModule().filters()


def test_the_filter_asks_the_same_rules_and_reads_templated_text_as_booleans() -> None:
    decide = filters()["bluegreen_step_decision"]
    assert filters()["bluegreen_maintenance_request"]("nope") == ""

    assert decide({"unchanged": "False"}, "deploy") == {"run": True, "reason": ""}
    assert decide({"unchanged": "True"}, "deploy") == {
        "run": False,
        "reason": "the version is live already",
    }
    assert decide({"failure": {"step": "lock"}}, "snapshot", "backup")["run"] is False


def test_the_filter_says_why_a_hosts_python_cannot_run_the_artifact() -> None:
    problem = filters()["bluegreen_python_requirement_problem"]

    assert problem(">=3.12", "3.11.2") == (
        "the project requires Python >=3.12 but the hosts run 3.11.2"
    )
    assert problem(">=3.11", "3.11.2") == ""
    # An artifact built before the manifest recorded it declares nothing: not refused.
    assert problem(None, "3.11.2") == "" and problem("", "3.13.5") == ""


def test_the_gate_reads_the_controllers_facts_and_the_commands_inputs() -> None:
    facts = {
        "bluegreen_release_unchanged": False,
        "bluegreen_recover_plan": {"action": "resume", "close_window": True},
        "bluegreen_data_maintenance_was_on": False,
    }
    record = record_from_params(record_from_facts(facts, {"rollback_data": True}, analysis=False))

    assert (record.recovering, record.recover_action, record.recover_close_window) == (
        True,
        "resume",
        True,
    )
    assert (record.quiesced, record.maintenance_was_on, record.data_rollback) == (True, False, True)
    assert record.analysis is False and record.recover_restore is False
    assert record_from_params(record_from_facts({})) == RunRecord()


@pytest.mark.parametrize(
    ("decision", "inconclusive", "paused"),
    [
        ({"action": "fail", "verdict": "inconclusive"}, "pause", True),
        ({"action": "fail", "verdict": "inconclusive"}, "proceed", False),
        # The rollback policy wins: traffic goes back, nothing waits.
        ({"action": "fail", "verdict": "inconclusive"}, "rollback", False),
        # Measured healthy: nothing to wait for.
        ({"action": "pass", "verdict": "ok"}, "pause", False),
        ({"action": "pass", "verdict": "warning"}, "pause", False),
        # Critical always rolls back.
        ({"action": "fail", "verdict": "critical"}, "pause", False),
    ],
)
def test_only_an_unmeasured_colour_pauses_and_only_when_told_to(
    decision: dict, inconclusive: str, paused: bool
) -> None:
    assert pauses(decision, "proceed", inconclusive) is paused


def test_a_rollback_target_is_refused_by_what_its_hosts_run() -> None:
    refused = {"2.0.3+errors30": "marked bad by release 20261206T1", "1.0.0": "never verified"}
    runs = {
        "app-green": {"green": "/opt/sampleapp/releases/2.0.3+errors30"},
        "app-blue": {"blue": "/opt/sampleapp/releases/1.0.0"},
        "app-green-2": {},
    }

    message = rollback_target_refusal("green", runs, refused)

    assert message.startswith(
        "refusing to roll back to green: app-green runs 2.0.3+errors30, marked bad by release "
        "20261206T1; nothing was written"
    )
    assert "app-blue" not in message  # blue is not the target
    fine = {"app-green": {"green": "/opt/sampleapp/releases/2.0.0/"}}
    assert rollback_target_refusal("green", fine, refused) == ""
    # A colour link that is not a release directory (never deployed) is no evidence.
    assert rollback_target_refusal("green", {"app-green": {"green": "/srv/x"}}, refused) == ""


def test_a_play_whose_step_does_not_run_gets_no_hosts() -> None:
    hosts = filters()["bluegreen_step_hosts"]

    release = {"bluegreen_release_command": "release"}
    assert hosts("lb", "deploy", release) == "lb"
    assert hosts("lb", "deploy", {**release, "bluegreen_release_unchanged": True}) == "all:!all"
    assert hosts("app", "rollback_switch", {"bluegreen_release_command": "rollback"}) == "app"
    # No command named yet (a syntax check): the play's own gate will decide.
    assert hosts("lb", "restore_read", {}) == "lb"


STEP_PLAYS = """\
- name: Remember that the version is live already
  hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        bluegreen_release_command: release
        bluegreen_release_unchanged: true
- name: Deploy
  hosts: "{{ 'all' | bluegreen_step_hosts('deploy', hostvars.localhost) }}"
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: deployed}
- name: Preflight, which still runs
  hosts: "{{ 'all' | bluegreen_step_hosts('preflight', hostvars.localhost) }}"
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: preflighted}
"""


def test_ansible_templates_a_plays_hosts_with_the_facts_earlier_plays_left(tmp_path: Path) -> None:
    """The premise of bluegreen_step_hosts, on the pinned ansible-core: a play's hosts are
    templated when it starts, with localhost's facts from the plays before it; the empty
    pattern matches nothing, without a warning even where mismatches warn."""
    playbook = tmp_path / "steps.yml"
    playbook.write_text(STEP_PLAYS)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_HOST_PATTERN_MISMATCH="warning",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
    )
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=/usr/bin/python3", str(playbook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "skipping: no hosts matched" in out and "deployed" not in out, out
    assert "preflighted" in out and "Could not match" not in out, out
