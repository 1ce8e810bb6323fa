"""Progress output, fed with events as ansible-runner records them (trimmed)."""

from __future__ import annotations

import io

from rich.console import Console

from bluegreen.progress import (
    LiveProgress,
    PlainProgress,
    failure_lines,
    format_duration,
    make_progress,
    plain_lines,
)

T0 = "2026-11-22T02:10:53.700000+00:00"


def event(kind: str, created: str = T0, stdout: str = "", **data: object) -> dict:
    return {"event": kind, "created": created, "stdout": stdout, "event_data": data}


PLAY = event("playbook_on_play_start", name="Release shop-api 1.4.2", play="Release")
DEPLOY = event("playbook_on_task_start", task="Deploy to idle colour")
DEPLOYED = event(
    "runner_on_ok",
    "2026-11-22T02:11:06.000000+00:00",
    host="app-green",
    task="Deploy to idle colour",
    res={"changed": True, "_ansible_no_log": False},
)
MIGRATE = event("playbook_on_task_start", "2026-11-22T02:11:06.100000+00:00", task="Migrate")
MIGRATE_FAILED = {
    "event": "runner_on_failed",
    "created": "2026-11-22T02:11:07.000000+00:00",
    "stdout": "\x1b[0;31mfatal: [app-green]: FAILED! => ...\x1b[0m",
    "event_data": {
        "play": "Release",
        "task": "Migrate",
        "task_action": "ansible.builtin.command",
        "host": "app-green",
        "remote_addr": "app-green",
        "res": {
            "changed": True,
            "stdout": "",
            "stderr": "alembic: relation app_user does not exist",
            "rc": 3,
            "msg": "non-zero return code",
            "_ansible_no_log": False,
        },
    },
}
SECRET_FAILED = event(
    "runner_on_failed",
    host="db1",
    task="Create the database user",
    res={
        "censored": "the output has been hidden due to the fact that 'no_log: true' was "
        "specified for this result",
    },
)
STATS = event(
    "playbook_on_stats",
    "2026-11-22T02:11:08.000000+00:00",
    ok={"app-green": 1},
    changed={"app-green": 2},
    failures={"app-green": 1},
    dark={},
    skipped={},
    processed={"app-green": 1},
    artifact_data={},
)


def test_host_result_is_one_plain_line() -> None:
    assert plain_lines(DEPLOYED, 12.3) == ["[ 12.3s] Deploy to idle colour | app-green | changed"]


def test_play_starts_have_their_own_lines_and_task_starts_only_when_verbose() -> None:
    assert plain_lines(PLAY, 0) == ["[  0.0s] PLAY Release shop-api 1.4.2"]
    assert plain_lines(DEPLOY, 0.4) == []
    assert plain_lines(DEPLOY, 0.4, verbosity=1) == ["[  0.4s] Deploy to idle colour | started"]


def test_plumbing_results_are_hidden_unless_they_fail_or_verbose() -> None:
    validated = event(
        "runner_on_ok",
        "2026-11-22T02:11:01.000000+00:00",
        host="lb1",
        task="Validating arguments against arg spec 'main' - The service",
        task_action="ansible.builtin.validate_argument_spec",
    )
    refused = dict(validated, event="runner_on_failed")
    refused["event_data"] = dict(validated["event_data"], res={"msg": "bad port"})
    assert plain_lines(validated, 1.0) == []
    assert plain_lines(validated, 1.0, verbosity=1) != []
    assert "| lb1 | failed" in plain_lines(refused, 1.0)[0]


def test_failed_task_shows_its_message_and_stderr() -> None:
    assert plain_lines(MIGRATE_FAILED, 13.3) == [
        "[ 13.3s] Migrate | app-green | failed",
        "    non-zero return code (rc=3)",
        "    alembic: relation app_user does not exist",
    ]


def test_no_log_failure_shows_nothing_but_the_censored_notice() -> None:
    lines = plain_lines(SECRET_FAILED, 1.0)

    assert lines[0] == "[  1.0s] Create the database user | db1 | failed"
    assert "no_log: true" in lines[1]
    assert len(lines) == 2


def test_skipped_unreachable_ignored_and_retries_are_labelled() -> None:
    skipped = event("runner_on_skipped", host="lb1", task="Reload nginx")
    unreachable = event(
        "runner_on_unreachable", host="lb1", task="Switch", res={"msg": "ssh: connect timed out"}
    )
    ignored = event(
        "runner_on_failed", host="lb1", task="Probe", ignore_errors=True, res={"msg": "404"}
    )
    retry = event(
        "runner_retry", host="app-blue", task="Wait for health", res={"attempts": 2, "retries": 10}
    )

    assert plain_lines(skipped, 1) == ["[  1.0s] Reload nginx | lb1 | skipped"]
    assert plain_lines(unreachable, 1) == [
        "[  1.0s] Switch | lb1 | unreachable",
        "    ssh: connect timed out",
    ]
    assert plain_lines(ignored, 1) == ["[  1.0s] Probe | lb1 | failed (ignored)"]
    assert plain_lines(retry, 1) == ["[  1.0s] Wait for health | app-blue | retrying (2/10)"]


def test_ansible_errors_are_printed_without_colour_codes() -> None:
    error = event("verbose", stdout="\x1b[0;31m[ERROR]: the playbook could not be found\x1b[0m")

    assert plain_lines(error, 0) == ["[ERROR]: the playbook could not be found"]


def test_verbose_mode_adds_what_ansible_printed_for_a_result() -> None:
    ok = event(
        "runner_on_ok",
        host="lb1",
        task="Read the live colour",
        res={"changed": False},
        stdout="ok: [lb1] => \r\n    active_colour: blue",
    )

    assert plain_lines(ok, 2.0) == ["[  2.0s] Read the live colour | lb1 | ok"]
    assert plain_lines(ok, 2.0, verbosity=1) == [
        "[  2.0s] Read the live colour | lb1 | ok",
        "        active_colour: blue",
    ]


def test_plain_progress_times_events_from_the_first_one_and_ends_with_a_summary() -> None:
    console = Console(file=io.StringIO(), width=120)
    progress = make_progress(console)
    assert isinstance(progress, PlainProgress)

    with progress:
        for recorded in (PLAY, DEPLOY, DEPLOYED, MIGRATE, MIGRATE_FAILED, STATS):
            progress(recorded)

    out = console.file.getvalue()
    assert "[  0.0s] PLAY Release shop-api 1.4.2" in out
    assert "[ 12.3s] Deploy to idle colour | app-green | changed" in out
    assert "[ 13.3s] Migrate | app-green | failed" in out
    assert "app-green" in out.split("Summary")[1]
    assert "Total elapsed 14.3s" in out


def test_compact_plain_progress_prints_only_failures() -> None:
    console = Console(file=io.StringIO(), width=120)

    with PlainProgress(console, compact=True) as progress:
        for recorded in (PLAY, DEPLOY, DEPLOYED, MIGRATE, MIGRATE_FAILED, STATS):
            progress(recorded)

    assert console.file.getvalue().splitlines() == [
        "[ 13.3s] Migrate | app-green | failed",
        "    non-zero return code (rc=3)",
        "    alembic: relation app_user does not exist",
    ]


def test_live_progress_prints_each_finished_step_its_failures_and_a_summary() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    progress = make_progress(console)
    assert isinstance(progress, LiveProgress)

    with progress:
        for recorded in (PLAY, DEPLOY, DEPLOYED, MIGRATE, MIGRATE_FAILED, STATS):
            progress(recorded)

    out = console.file.getvalue()
    assert "Release shop-api 1.4.2" in out
    deploy_row = next(line for line in out.splitlines() if "Deploy to idle colour" in line)
    assert "12.3s" in deploy_row and "changed app-green" in deploy_row
    assert out.index("failed app-green") < out.index("alembic: relation app_user does not exist")
    assert "Total elapsed 14.3s" in out


def test_long_failure_output_is_cut_with_a_note() -> None:
    lines = failure_lines("\n".join(f"line {n}" for n in range(100)), limit=5)

    assert lines == [*(f"line {n}" for n in range(5)), "... 95 more lines in the run log"]


def test_durations_read_naturally() -> None:
    assert format_duration(4.31) == "4.3s"
    assert format_duration(125) == "2m 05s"
    assert format_duration(7260) == "2h 01m"
