"""release_lock: one release per app at a time.

The pure rules are tested on values; the module is run in-process against a lock directory
under tmp_path, and from several processes at once to prove that only one of them wins.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import release_lock
from ansible.module_utils.release_lock import (
    UTC,
    LockError,
    ObservedLock,
    acquire_refused_message,
    decide_acquire,
    decide_release,
    decide_takeover,
    describe_holder,
    format_duration,
    lock_age_seconds,
    lock_is_stale,
    observe_lock,
    owner_process_gone,
    owner_record,
    paused_advice,
    paused_record,
    release_refused_message,
    takeover_refused_message,
)
from ansible.module_utils.testing import patch_module_args

NOW = datetime(2026, 11, 22, 2, 3, 16, tzinfo=UTC)
ALICE = {
    "user": "alice",
    "controller_host": "ctl",
    "release_id": "20261122T020304-ab12",
    "version": "2.0.0",
    "command": "bluegreen release sampleapp 2.0.0",
}
BOB = {"user": "bob", "controller_host": "laptop", "release_id": "r2", "version": "2.0.1"}


def held(acquired_at: datetime = NOW - timedelta(seconds=12), **extra: Any) -> ObservedLock:
    holder = owner_record(ALICE, "ab12cd34", acquired_at, 3600) | extra
    return ObservedLock(exists=True, holder=holder, mtime=acquired_at.timestamp())


def incomplete(age_seconds: int = 5) -> ObservedLock:
    mtime = (NOW - timedelta(seconds=age_seconds)).timestamp()
    return observe_lock(True, None, mtime)


# Pure rules


def test_owner_record_puts_the_lock_fields_first_and_keeps_the_owner() -> None:
    record = owner_record(ALICE, "ab12cd34", NOW, 600)
    assert list(record)[:3] == ["lock_id", "acquired_at", "lease_seconds"]
    assert record["acquired_at"] == "2026-11-22T02:03:16Z"
    assert record["command"] == ALICE["command"]


def test_owner_may_not_overwrite_the_lock_id() -> None:
    with pytest.raises(LockError, match="lock_id"):
        owner_record({"lock_id": "mine"}, "ab12cd34", NOW, 600)


@pytest.mark.parametrize(
    ("exists", "text", "problem"),
    [
        (True, None, "owner.json is missing"),
        (True, '{"lock_id": "ab', "not valid JSON"),
        (True, '{"user": "alice"}', "no lock_id"),
    ],
)
def test_unreadable_owner_makes_an_incomplete_lock(
    exists: bool, text: str | None, problem: str
) -> None:
    observed = observe_lock(exists, text, 1.0)
    assert observed.incomplete
    assert problem in str(observed.problem)


def test_a_missing_directory_is_a_free_lock() -> None:
    observed = observe_lock(False, None, None)
    assert not observed.exists and not observed.incomplete
    assert lock_age_seconds(observed, NOW) is None
    assert not lock_is_stale(observed, NOW, 1)


def test_age_comes_from_acquired_at_and_stale_from_the_holders_own_lease() -> None:
    observed = held(NOW - timedelta(seconds=3601))
    assert lock_age_seconds(observed, NOW) == 3601
    assert lock_is_stale(observed, NOW, default_lease_seconds=999_999)
    assert not lock_is_stale(held(NOW - timedelta(seconds=3600)), NOW, default_lease_seconds=1)


def test_an_incomplete_lock_ages_from_its_directory_mtime_against_the_callers_lease() -> None:
    observed = incomplete(age_seconds=120)
    assert lock_age_seconds(observed, NOW) == 120
    assert lock_is_stale(observed, NOW, default_lease_seconds=60)
    assert not lock_is_stale(observed, NOW, default_lease_seconds=3600)


@pytest.mark.parametrize(
    ("observed", "lock_id", "action"),
    [
        (ObservedLock(exists=False), None, "acquire"),
        (ObservedLock(exists=False), "ab12cd34", "acquire"),
        (held(), "ab12cd34", "keep"),
        (held(), "other", "refuse"),
        (held(), None, "refuse"),
        (incomplete(), "ab12cd34", "refuse"),
    ],
)
def test_decide_acquire(observed: ObservedLock, lock_id: str | None, action: str) -> None:
    assert decide_acquire(observed, lock_id).action == action


@pytest.mark.parametrize(
    ("observed", "lock_id", "force", "action", "changed"),
    [
        (ObservedLock(exists=False), "ab12cd34", False, "none", False),
        (held(), "ab12cd34", False, "release", True),
        (held(), "other", False, "refuse", False),
        (held(), "other", True, "release", True),
        (incomplete(), "ab12cd34", False, "refuse", False),
        (incomplete(), None, True, "release", True),
    ],
)
def test_decide_release(
    observed: ObservedLock, lock_id: str | None, force: bool, action: str, changed: bool
) -> None:
    decision = decide_release(observed, lock_id, force)
    assert (decision.action, decision.changed) == (action, changed)


def test_refusal_names_the_holder_and_the_break_command() -> None:
    message = acquire_refused_message("/var/lib/bluegreen/sampleapp/lock", held(), NOW, 3600)
    assert message == (
        "release lock /var/lib/bluegreen/sampleapp/lock is held by alice@ctl"
        " (release 20261122T020304-ab12, version 2.0.0) since 2026-11-22T02:03:04Z"
        " (12 s ago, lock id ab12cd34); wait for it to finish, or if that release is dead,"
        " break the lock with: bluegreen lock break ab12cd34"
    )


def test_refusal_says_when_the_lock_is_stale() -> None:
    message = acquire_refused_message("/l", held(NOW - timedelta(hours=2)), NOW, 3600)
    assert "(2 h 0 min ago, lock id ab12cd34); it is older than its lease of 1 h 0 min" in message


def test_refusal_of_an_incomplete_lock_explains_both_causes() -> None:
    message = acquire_refused_message("/l", incomplete(age_seconds=7), NOW, 3600)
    assert message.startswith(
        "release lock /l is incomplete: the directory exists but owner.json is missing"
        " (directory last modified 2026-11-22T02:03:09Z, 7 s ago)"
    )
    assert "taking the lock at this very moment, or one crashed" in message
    assert message.endswith("bluegreen lock break --force")


def test_release_refusal_names_both_ids() -> None:
    message = release_refused_message("/l", held(), NOW, 3600, "other")
    assert "lock id ab12cd34), not by lock id other, so it was not released" in message


@pytest.mark.parametrize(
    ("holder", "text"),
    [
        ({"user": "alice"}, "alice"),
        ({"controller_host": "ctl", "pid": 42}, "ctl (pid 42)"),
        ({}, "an unnamed owner"),
    ],
)
def test_describe_holder_uses_what_is_known(holder: dict[str, Any], text: str) -> None:
    assert describe_holder(holder) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (61, "1 min 1 s"), (7260, "2 h 1 min"), (90000, "1 d 1 h")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


# The module, in-process


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "bluegreen" / "sampleapp" / "lock"


def take(run_module, lock_path: Path, owner: dict[str, Any] = ALICE, **args: Any) -> dict:
    return run_module(release_lock.main, {"path": str(lock_path), "owner": owner, **args})


def drop(run_module, lock_path: Path, **args: Any) -> dict:
    return run_module(release_lock.main, {"path": str(lock_path), "state": "absent", **args})


def owner_on_disk(lock_path: Path) -> dict[str, Any]:
    return json.loads((lock_path / "owner.json").read_text())


def test_acquire_creates_the_lock_with_its_owner(run_module, lock_path: Path) -> None:
    result = take(run_module, lock_path)

    assert result["changed"] and result["acquired"]
    assert len(result["lock_id"]) == 32
    assert not result["stale"] and result["age_seconds"] == 0
    on_disk = owner_on_disk(lock_path)
    assert on_disk == result["holder"]
    assert on_disk["lock_id"] == result["lock_id"]
    assert on_disk["user"] == "alice" and on_disk["lease_seconds"] == 3600
    assert datetime.fromisoformat(on_disk["acquired_at"].replace("Z", "+00:00")).tzinfo
    assert oct(lock_path.parent.stat().st_mode & 0o777) == "0o755"


def test_second_acquire_fails_naming_the_holder(run_module, lock_path: Path) -> None:
    first = take(run_module, lock_path)

    second = take(run_module, lock_path, owner=BOB)

    assert second["failed"] and not second["acquired"]
    assert "is held by alice@ctl" in second["msg"]
    assert "version 2.0.0" in second["msg"]
    assert f"bluegreen lock break {first['lock_id']}" in second["msg"]
    assert second["holder"] == first["holder"]
    assert owner_on_disk(lock_path)["user"] == "alice"


def test_acquire_again_with_the_same_id_is_reentrant(run_module, lock_path: Path) -> None:
    first = take(run_module, lock_path, lock_id="release-20261122")

    again = take(run_module, lock_path, lock_id="release-20261122", owner=BOB)

    assert first["lock_id"] == "release-20261122"
    assert not again["failed"] and not again["changed"] and again["acquired"]
    assert again["holder"] == first["holder"]


def test_release_with_another_id_fails_and_keeps_the_lock(run_module, lock_path: Path) -> None:
    first = take(run_module, lock_path)

    result = drop(run_module, lock_path, lock_id="not-mine")

    assert result["failed"]
    assert "not by lock id not-mine, so it was not released" in result["msg"]
    assert owner_on_disk(lock_path)["lock_id"] == first["lock_id"]


def test_release_with_its_id_removes_the_lock_once(run_module, lock_path: Path) -> None:
    first = take(run_module, lock_path)

    released = drop(run_module, lock_path, lock_id=first["lock_id"])
    again = drop(run_module, lock_path, lock_id=first["lock_id"])

    assert released["changed"] and released["holder"] == first["holder"]
    assert not lock_path.exists() and lock_path.parent.is_dir()
    assert not again["changed"] and again["holder"] is None
    assert take(run_module, lock_path, owner=BOB)["changed"]


def test_force_releases_a_lock_whatever_its_id(run_module, lock_path: Path) -> None:
    take(run_module, lock_path)

    result = drop(run_module, lock_path, force=True)

    assert result["changed"] and not lock_path.exists()


def test_release_needs_a_lock_id_or_force(run_module, lock_path: Path) -> None:
    take(run_module, lock_path)

    result = drop(run_module, lock_path)

    assert result["failed"] and "needs the lock_id" in result["msg"]
    assert lock_path.exists()


def test_force_cannot_take_over_a_lock(run_module, lock_path: Path) -> None:
    take(run_module, lock_path)

    result = take(run_module, lock_path, owner=BOB, force=True)

    assert result["failed"] and "force is only for state=absent" in result["msg"]
    assert owner_on_disk(lock_path)["user"] == "alice"


def test_owner_with_a_reserved_key_fails_before_touching_anything(
    run_module, lock_path: Path
) -> None:
    result = take(run_module, lock_path, owner={"lock_id": "x"})

    assert result["failed"] and "owner may not contain lock_id" in result["msg"]
    assert not lock_path.exists()


def test_check_mode_reports_without_taking_or_releasing(run_module, lock_path: Path) -> None:
    args = {"path": str(lock_path), "owner": ALICE}
    would_take = run_module(release_lock.main, args, check_mode=True)
    assert would_take["changed"] and would_take["acquired"]
    assert not lock_path.exists() and not lock_path.parent.exists()

    taken = take(run_module, lock_path)
    absent = {"path": str(lock_path), "state": "absent", "lock_id": taken["lock_id"]}
    would_release = run_module(release_lock.main, absent, check_mode=True)
    assert would_release["changed"]
    assert owner_on_disk(lock_path) == taken["holder"]


def test_diff_shows_owner_before_and_after(run_module, lock_path: Path) -> None:
    taken = run_module(release_lock.main, {"path": str(lock_path), "owner": ALICE}, diff=True)
    assert taken["diff"]["before"] == ""
    assert json.loads(taken["diff"]["after"]) == taken["holder"]
    assert taken["diff"]["after_header"] == str(lock_path / "owner.json")

    released = run_module(
        release_lock.main,
        {"path": str(lock_path), "state": "absent", "lock_id": taken["lock_id"]},
        diff=True,
    )
    assert json.loads(released["diff"]["before"]) == taken["holder"]
    assert released["diff"]["after"] == ""
    assert "diff" not in take(run_module, lock_path)


@pytest.mark.parametrize(
    ("owner_text", "problem"),
    [(None, "owner.json is missing"), ('{"lock_id": "ab12', "owner.json is not valid JSON")],
)
def test_an_incomplete_lock_blocks_and_is_described(
    run_module, lock_path: Path, owner_text: str | None, problem: str
) -> None:
    lock_path.mkdir(parents=True)
    if owner_text is not None:
        (lock_path / "owner.json").write_text(owner_text)

    result = take(run_module, lock_path)

    assert result["failed"] and result["holder"] is None
    assert f"is incomplete: the directory exists but {problem}" in result["msg"]
    assert "directory last modified 20" in result["msg"]
    assert drop(run_module, lock_path, lock_id="ab12")["failed"]
    assert drop(run_module, lock_path, force=True)["changed"]
    assert not lock_path.exists()


def test_a_stale_lock_is_reported_but_not_broken(run_module, lock_path: Path) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    lock_path.mkdir(parents=True)
    stale_owner = owner_record(ALICE, "ab12cd34", two_hours_ago, 3600)
    (lock_path / "owner.json").write_text(json.dumps(stale_owner))

    result = take(run_module, lock_path, owner=BOB)

    assert result["failed"] and result["stale"]
    assert result["age_seconds"] >= 7200
    assert "older than its lease of 1 h 0 min and probably stale" in result["msg"]
    assert owner_on_disk(lock_path)["lock_id"] == "ab12cd34"


def test_force_release_refuses_a_directory_with_foreign_files(run_module, lock_path: Path) -> None:
    take(run_module, lock_path)
    (lock_path / "precious.db").write_text("not the lock's")

    result = drop(run_module, lock_path, force=True)

    assert result["failed"] and "precious.db" in result["msg"]
    assert (lock_path / "precious.db").exists() and (lock_path / "owner.json").exists()


def test_a_file_at_the_lock_path_is_an_error(run_module, lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("")

    result = take(run_module, lock_path)

    assert result["failed"] and "exists but is not a directory" in result["msg"]


# Many releases at once


def _acquire_in_child(lock_path: str, index: int, barrier: Any, results: Any) -> None:
    owner = {"user": f"user{index}", "pid": os.getpid()}
    out = io.StringIO()
    barrier.wait()
    with (
        patch_module_args({"path": lock_path, "owner": owner}),
        contextlib.redirect_stdout(out),
        contextlib.suppress(SystemExit),
    ):
        release_lock.main()
    results.put(json.loads(out.getvalue()))


def test_only_one_of_eight_concurrent_acquires_wins(lock_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    results = context.Queue()
    workers = [
        context.Process(target=_acquire_in_child, args=(str(lock_path), i, barrier, results))
        for i in range(8)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    winners = [r for r in outcomes if not r.get("failed")]
    losers = [r for r in outcomes if r.get("failed")]
    assert len(winners) == 1 and len(losers) == 7
    assert owner_on_disk(lock_path)["lock_id"] == winners[0]["lock_id"]
    assert all("release lock" in r["msg"] for r in losers)


# Taking over the lock of a dead release

STARTED = "Sun Nov 22 02:03:04 2026"
DEAD_OWNER = {
    **ALICE,
    "controller": "ctl",
    "controller_pid": 4242,
    "controller_pid_started": STARTED,
}


@pytest.mark.parametrize(
    ("holder", "controller", "started_now", "gone"),
    [
        (DEAD_OWNER, "ctl", None, True),  # no such process any more
        (DEAD_OWNER, "ctl", "Sun Nov 22 05:00:00 2026", True),  # pid reused
        (DEAD_OWNER, "ctl", STARTED, False),  # still running
        (DEAD_OWNER, "laptop", None, False),  # another controller cannot tell
        (ALICE, "ctl", None, False),  # no pid recorded
        (None, "ctl", None, False),
    ],
)
def test_owner_process_gone(holder, controller: str, started_now, gone: bool) -> None:
    assert owner_process_gone(holder, controller, started_now) is gone


@pytest.mark.parametrize(
    ("observed", "takeover_id", "holder_gone", "stale", "action"),
    [
        (observe_lock(False, None, None), "ab12cd34", False, False, "acquire"),
        (held(), "ab12cd34", True, False, "takeover"),
        (held(), "ab12cd34", False, True, "takeover"),
        (held(), "ab12cd34", False, False, "refuse"),
        (held(), "another", True, True, "refuse"),
    ],
)
def test_decide_takeover(observed, takeover_id, holder_gone, stale, action) -> None:
    assert decide_takeover(observed, takeover_id, holder_gone, stale).action == action


def test_takeover_refusals_say_why() -> None:
    alive = takeover_refused_message("/l", held(), NOW, 3600, "ab12cd34")
    moved_on = takeover_refused_message("/l", held(), NOW, 3600, "old")

    assert "its owner is not known to be gone and its lease has not run out" in alive
    assert "bluegreen lock break ab12cd34" in alive
    assert "another release took the lock meanwhile" in moved_on


def dead_lock(run_module, lock_path: Path) -> dict:
    owner = {**DEAD_OWNER}
    owner.pop("controller_host")
    return take(run_module, lock_path, owner=owner)


def take_over(run_module, lock_path: Path, lock_id: str, started: str, **args: Any) -> dict:
    """Bob, on the holder's controller "ctl", taking over lock ``lock_id`` whose holder's
    process now reads as started at ``started`` ('' when it no longer runs)."""
    return take(
        run_module,
        lock_path,
        owner=BOB,
        takeover_lock_id=lock_id,
        controller="ctl",
        holder_process_started=started,
        **args,
    )


def test_takeover_replaces_the_lock_of_a_gone_owner(run_module, lock_path: Path) -> None:
    first = dead_lock(run_module, lock_path)

    result = take_over(run_module, lock_path, first["lock_id"], "")

    assert result["changed"] and result["acquired"] and result["owner_gone"]
    assert result["taken_over"]["lock_id"] == first["lock_id"]
    assert owner_on_disk(lock_path)["user"] == "bob"
    assert sorted(p.name for p in lock_path.parent.iterdir()) == ["lock", "lock.takeover"]


def test_takeover_refuses_a_living_owner_and_keeps_its_lock(run_module, lock_path: Path) -> None:
    first = dead_lock(run_module, lock_path)

    result = take_over(run_module, lock_path, first["lock_id"], STARTED)

    assert result["failed"] and not result["acquired"]
    assert "was not taken over" in result["msg"]
    assert owner_on_disk(lock_path)["lock_id"] == first["lock_id"]


def test_takeover_of_a_lock_that_changed_hands_is_refused(run_module, lock_path: Path) -> None:
    dead_lock(run_module, lock_path)

    result = take_over(run_module, lock_path, "an-older-lock", "")

    assert result["failed"] and "another release took the lock meanwhile" in result["msg"]


def test_query_reports_the_holder_without_changing_it(run_module, lock_path: Path) -> None:
    first = take(run_module, lock_path)

    result = run_module(release_lock.main, {"path": str(lock_path), "state": "query"})

    assert not result["changed"] and result["lock_id"] == first["lock_id"]
    assert result["holder"]["user"] == "alice" and result["age_seconds"] is not None


# A release paused for a person keeps its lock


def paused_lock(run_module, lock_path: Path) -> dict:
    """A lock whose controller is gone, kept by its release while it waits for a person."""
    first = dead_lock(run_module, lock_path)
    paused = run_module(
        release_lock.main,
        {"path": str(lock_path), "state": "paused", "lock_id": first["lock_id"]},
        diff=True,
    )
    assert paused["changed"] and paused["acquired"], paused
    return first


def test_pausing_marks_the_holder_once_and_shows_it_in_the_diff(
    run_module, lock_path: Path
) -> None:
    first = paused_lock(run_module, lock_path)

    on_disk = owner_on_disk(lock_path)
    assert on_disk["lock_id"] == first["lock_id"] and "since" in on_disk["paused"]
    again = run_module(
        release_lock.main, {"path": str(lock_path), "state": "paused", "lock_id": first["lock_id"]}
    )
    assert not again["changed"]
    assert owner_on_disk(lock_path) == on_disk


def test_only_the_holder_can_pause_its_lock(run_module, lock_path: Path) -> None:
    dead_lock(run_module, lock_path)

    other = run_module(
        release_lock.main, {"path": str(lock_path), "state": "paused", "lock_id": "not-mine"}
    )
    missing = run_module(release_lock.main, {"path": str(lock_path), "state": "paused"})

    assert other["failed"] and "not paused" in other["msg"]
    assert missing["failed"] and "needs the lock_id" in missing["msg"]
    assert "paused" not in owner_on_disk(lock_path)


def test_a_paused_lock_is_not_taken_over_though_its_controller_is_gone(
    run_module, lock_path: Path
) -> None:
    first = paused_lock(run_module, lock_path)

    refused = take_over(run_module, lock_path, first["lock_id"], "")
    plain = take(run_module, lock_path, owner=BOB)

    for result in (refused, plain):
        assert result["failed"] and not result["acquired"]
        assert "PAUSED" in result["msg"] and "bluegreen promote" in result["msg"]
        assert "bluegreen rollback" in result["msg"]
    assert owner_on_disk(lock_path)["lock_id"] == first["lock_id"]


def test_promote_and_rollback_take_a_paused_lock_over(run_module, lock_path: Path) -> None:
    first = paused_lock(run_module, lock_path)

    result = take(
        run_module,
        lock_path,
        owner=BOB,
        takeover_lock_id=first["lock_id"],
        takeover_paused=True,
        controller="another-controller",
    )

    assert result["changed"] and result["acquired"]
    assert result["taken_over"]["paused"]
    assert owner_on_disk(lock_path)["user"] == "bob"
    assert "paused" not in owner_on_disk(lock_path)


def test_a_paused_lock_never_goes_stale() -> None:
    holder = {"lock_id": "L", "acquired_at": "2026-11-20T00:00:00Z", "lease_seconds": 60}
    running = observe_lock(True, json.dumps(holder), None)
    paused = observe_lock(True, json.dumps({**holder, "paused": {"since": "x"}}), None)

    assert lock_is_stale(running, NOW, 60)
    assert not lock_is_stale(paused, NOW, 60)
    assert decide_takeover(paused, "L", holder_gone=True, stale=True).action == "refuse"
    assert decide_takeover(paused, "L", False, False, takeover_paused=True).action == "takeover"


def test_a_held_lock_is_taken_over_by_promote_or_abort_only() -> None:
    holder = {"lock_id": "L", "acquired_at": "2026-11-20T00:00:00Z", "lease_seconds": 60}
    record = paused_record(holder, NOW, held_until="2026-11-21T00:00:00Z")
    held = observe_lock(True, json.dumps(record), None)

    assert held.paused and held.held and not lock_is_stale(held, NOW, 60)
    assert record["paused"]["until"] == "2026-11-21T00:00:00Z"
    # A rollback (takeover_paused) has nothing of it to undo; promote and abort finish it.
    assert decide_takeover(held, "L", True, True, takeover_paused=True).action == "refuse"
    assert decide_takeover(held, "L", False, False, takeover_held=True).action == "takeover"
    advice = paused_advice(held)
    assert "HELD before its switch" in advice and "bluegreen abort" in advice
    assert "2026-11-21T00:00:00Z" in advice
