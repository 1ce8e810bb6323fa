"""release_journal: an append-only JSON-lines record of every release step.

The record is built by pure functions (times, duration, redaction) and tested on values;
the module is run in-process against a journal under tmp_path, and from several
processes at once to prove that concurrent appends only ever produce whole lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import release_journal
from ansible.module_utils.release_journal import (
    REDACTED,
    UTC,
    JournalError,
    build_entry,
    plan_append,
    read_journal,
    redact,
    step_times,
)
from ansible.module_utils.testing import patch_module_args

NOW = datetime(2026, 11, 22, 2, 5, 10, 412000, tzinfo=UTC)
SECRET = "s3cr3t-Pa55"


def entry(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "release_id": "20261122T020304-ab12",
        "step": "switch",
        "outcome": "ok",
        "now": NOW,
    }
    return build_entry(**(args | overrides)).as_dict()


# Pure rules


def test_a_record_has_every_field_in_order() -> None:
    record = entry(host="lb1", message="blue -> green", evidence={"active_colour": "green"})
    assert list(record) == [
        "ts",
        "release_id",
        "step",
        "outcome",
        "started_at",
        "finished_at",
        "duration_s",
        "host",
        "message",
        "evidence",
    ]
    assert record["ts"] == record["finished_at"] == "2026-11-22T02:05:10.412Z"
    assert record["started_at"] is None and record["duration_s"] is None
    assert record["evidence"] == {"active_colour": "green"}


def test_duration_is_computed_when_both_times_are_known() -> None:
    record = entry(started_at="2026-11-22T02:05:08Z")
    assert record["started_at"] == "2026-11-22T02:05:08.000Z"
    assert record["duration_s"] == 2.412


def test_times_are_normalised_to_utc_and_naive_times_are_utc() -> None:
    times = step_times("ok", "2026-11-22T03:05:08+01:00", "2026-11-22 02:05:09.5", NOW)
    assert times.started_at == "2026-11-22T02:05:08.000Z"
    assert times.finished_at == "2026-11-22T02:05:09.500Z"
    assert times.duration_s == 1.5


def test_a_started_step_is_stamped_now_and_has_no_end() -> None:
    times = step_times("started", None, None, NOW)
    assert (times.started_at, times.finished_at, times.duration_s) == (
        "2026-11-22T02:05:10.412Z",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("outcome", "started_at", "finished_at", "error"),
    [
        ("started", None, "2026-11-22T02:05:10Z", "finished_at was given for outcome=started"),
        ("ok", "2026-11-22T02:05:10Z", "2026-11-22T02:05:09Z", "is before started_at"),
        ("ok", "yesterday", None, "started_at 'yesterday' is not an ISO-8601 time"),
    ],
)
def test_impossible_times_are_refused(
    outcome: str, started_at: str | None, finished_at: str | None, error: str
) -> None:
    with pytest.raises(JournalError, match=error):
        step_times(outcome, started_at, finished_at, NOW)


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(JournalError, match="outcome must be one of"):
        entry(outcome="great")


def test_redaction_reaches_nested_values_keys_and_numbers() -> None:
    evidence = {
        "url": f"postgresql://app:{SECRET}@db1/app",
        "argv": ["psql", f"--password={SECRET}", {"nested": SECRET}],
        SECRET: "as a key",
        "pin": 4242,
        "count": 3,
        "ok": True,
    }
    cleaned = redact(evidence, [SECRET, "4242", ""])
    assert SECRET not in json.dumps(cleaned)
    assert cleaned["url"] == f"postgresql://app:{REDACTED}@db1/app"
    assert cleaned["argv"] == ["psql", f"--password={REDACTED}", {"nested": REDACTED}]
    assert cleaned[REDACTED] == "as a key"
    assert cleaned["pin"] == REDACTED
    assert (cleaned["count"], cleaned["ok"]) == (3, True)


def test_redaction_hides_the_longest_secret_whole() -> None:
    assert redact("token=abcdef", ["abc", "abcdef"]) == f"token={REDACTED}"


def test_build_entry_redacts_message_and_evidence() -> None:
    record = entry(
        message=f"migrate failed: password {SECRET} rejected",
        evidence={"stderr": f"FATAL: password authentication failed ({SECRET})"},
        redact_values=[SECRET],
    )
    assert SECRET not in json.dumps(record)
    assert record["message"] == f"migrate failed: password {REDACTED} rejected"


def test_plan_append_keeps_a_cut_line_apart() -> None:
    assert plan_append("{}\n", 0, True) == (b"{}\n", 1)
    assert plan_append("{}\n", 4, True) == (b"{}\n", 5)
    assert plan_append("{}\n", 4, False) == (b"\n{}\n", 6)


def test_read_journal_skips_and_reports_a_truncated_last_line() -> None:
    lines = ['{"step": "lock"}\n', '{"step": "deploy"}\n', '{"step": "mig']

    records = read_journal(lines)

    assert records == [{"step": "lock"}, {"step": "deploy"}]
    assert [(s.line_number, s.text) for s in records.skipped] == [(3, '{"step": "mig')]
    assert "end of the journal" in records.skipped[0].reason


def test_read_journal_skips_damage_in_the_middle_and_blank_lines() -> None:
    text = '{"step": "lock"}\n{"ste\n\n{"step": "deploy"}\n[1, 2]\n'

    records = read_journal(text.splitlines())

    assert records == [{"step": "lock"}, {"step": "deploy"}]
    assert [(s.line_number, s.reason) for s in records.skipped] == [
        (2, "not valid JSON (a write was interrupted)"),
        (5, "not a JSON object"),
    ]


def test_read_journal_of_nothing_is_empty() -> None:
    records = read_journal([])
    assert records == [] and records.skipped == []


# The module, in-process


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "bluegreen" / "sampleapp" / "journal.jsonl"


def append(run_module, journal: Path, **args: Any) -> dict[str, Any]:
    module_args = {
        "path": str(journal),
        "release_id": "20261122T020304-ab12",
        "step": "deploy",
        "outcome": "ok",
        **args,
    }
    check_mode = module_args.pop("check_mode", False)
    diff = module_args.pop("diff", False)
    return run_module(release_journal.main, module_args, check_mode=check_mode, diff=diff)


def journal_records(journal: Path) -> list[dict[str, Any]]:
    with journal.open(encoding="utf-8") as lines:
        return read_journal(lines)


def test_append_creates_the_journal_and_numbers_the_lines(run_module, journal: Path) -> None:
    first = append(run_module, journal, step="lock", outcome="started")
    second = append(run_module, journal, step="lock", evidence={"lock_id": "ab12cd34"})

    assert first["changed"] and second["changed"]
    assert (first["line_number"], second["line_number"]) == (1, 2)
    assert journal_records(journal) == [first["record"], second["record"]]
    assert journal.read_text().count("\n") == 2
    assert oct(journal.stat().st_mode & 0o777) == "0o640"


def test_append_records_the_duration_of_a_step(run_module, journal: Path) -> None:
    started = append(run_module, journal, step="health", outcome="started")

    finished = append(
        run_module, journal, step="health", started_at=started["record"]["started_at"]
    )

    record = finished["record"]
    assert record["started_at"] == started["record"]["started_at"]
    assert record["duration_s"] is not None and record["duration_s"] >= 0


def test_secrets_never_reach_the_journal(run_module, journal: Path) -> None:
    result = append(
        run_module,
        journal,
        step="migrate",
        outcome="failed",
        message=f"alembic upgrade failed for postgresql://app:{SECRET}@db1/app",
        evidence={"env": {"DATABASE_URL": f"postgresql://app:{SECRET}@db1/app"}},
        redact=[SECRET],
    )

    assert SECRET not in journal.read_text()
    assert SECRET not in json.dumps(result)
    assert journal_records(journal)[0]["evidence"]["env"]["DATABASE_URL"] == (
        f"postgresql://app:{REDACTED}@db1/app"
    )


def test_check_mode_writes_nothing_and_reports_a_change(run_module, journal: Path) -> None:
    result = append(run_module, journal, check_mode=True)
    assert result["changed"] and result["line_number"] == 1
    assert not journal.exists() and not journal.parent.exists()

    append(run_module, journal)
    before = journal.read_bytes()
    assert append(run_module, journal, check_mode=True)["line_number"] == 2
    assert journal.read_bytes() == before


def test_diff_shows_the_appended_line(run_module, journal: Path) -> None:
    result = append(run_module, journal, diff=True)

    assert result["diff"]["before"] == ""
    assert json.loads(result["diff"]["after"]) == result["record"]
    assert result["diff"]["after_header"] == f"{journal} (line 1 appended)"


def test_a_truncated_last_line_is_left_alone_and_new_records_stay_whole(
    run_module, journal: Path
) -> None:
    first = append(run_module, journal, step="lock")
    with journal.open("a", encoding="utf-8") as crashed:
        crashed.write('{"ts": "2026-11-22T02:05:1')

    after = append(run_module, journal, step="rollback")

    assert after["line_number"] == 3
    lines = journal.read_text().splitlines()
    assert lines[1] == '{"ts": "2026-11-22T02:05:1'
    records = journal_records(journal)
    assert records == [first["record"], after["record"]]
    assert [s.line_number for s in records.skipped] == [2]


def test_an_invalid_time_fails_and_writes_nothing(run_module, journal: Path) -> None:
    result = append(run_module, journal, started_at="soon")

    assert result["failed"] and "started_at 'soon' is not an ISO-8601 time" in result["msg"]
    assert not journal.exists()


# Many writers at once

WRITERS = 6
APPENDS_PER_WRITER = 40
# Larger than a pipe buffer page, so unlocked or split writes would interleave visibly.
PADDING = "x" * 20_000


def _append_in_child(path: str, writer: int, barrier: Any) -> None:
    barrier.wait()
    for index in range(APPENDS_PER_WRITER):
        args = {
            "path": path,
            "release_id": f"writer-{writer}",
            "step": "verify",
            "outcome": "info",
            "evidence": {"index": index, "padding": PADDING},
        }
        with (
            patch_module_args(args),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.suppress(SystemExit),
        ):
            release_journal.main()


def test_concurrent_appends_produce_only_whole_lines(journal: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WRITERS)
    workers = [
        context.Process(target=_append_in_child, args=(str(journal), writer, barrier))
        for writer in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert all(worker.exitcode == 0 for worker in workers)

    raw_lines = journal.read_text(encoding="utf-8").split("\n")
    assert raw_lines[-1] == ""
    records = read_journal(raw_lines)
    assert records.skipped == []
    written = sorted((r["release_id"], r["evidence"]["index"]) for r in records)
    assert written == sorted(
        (f"writer-{w}", i) for w in range(WRITERS) for i in range(APPENDS_PER_WRITER)
    )
    assert all(r["evidence"]["padding"] == PADDING for r in records)


def test_timezone_offsets_in_results_are_utc(run_module, journal: Path) -> None:
    local = datetime.now(timezone(timedelta(hours=5, minutes=30))).isoformat()

    record = append(run_module, journal, started_at=local)["record"]

    assert record["started_at"].endswith("Z")
    assert record["duration_s"] >= 0
