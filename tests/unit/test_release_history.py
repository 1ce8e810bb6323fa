"""The release state machine as folded from journal records, and crash recovery."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.release_flow import promote_refusal
from ansible.module_utils.release_history import (
    held_release,
    last_verified,
    paused_release,
    recovery_action,
    rollback_refused_versions,
    summarize,
    unfinished_release,
)


def record(release_id: str, step: str, result: str = "ok", /, **evidence: Any) -> dict:
    return {
        "ts": "2026-11-22T02:00:00.000Z",
        "release_id": release_id,
        "step": step,
        "outcome": result,
        "started_at": None,
        "finished_at": "2026-11-22T02:00:00.000Z",
        "duration_s": None,
        "host": None,
        "message": f"{step} {result}",
        "evidence": evidence,
    }


def lock(release_id: str, version: str, colour: str = "green", previous: str = "blue") -> dict:
    return record(
        release_id,
        "lock",
        command="release",
        lock_id=f"lock-{release_id}",
        version=version,
        colour=colour,
        previous_colour=previous,
        previous_version="1.0.0",
    )


def released(release_id: str, version: str, outcome: str = "released", **kw: Any) -> list[dict]:
    """A whole release that got as far as its outcome says."""
    records = [lock(release_id, version, **kw), record(release_id, "snapshot")]
    if outcome in ("released", "unverified", "paused", "rolled_back"):
        records += [record(release_id, "deploy"), record(release_id, "switch")]
        records.append(
            record(release_id, "analysis", "failed" if outcome == "rolled_back" else "ok")
        )
        if outcome == "rolled_back":
            records.append(record(release_id, "rollback"))
    elif outcome == "failed_before_switch":
        records.append(record(release_id, "deploy", "failed"))
    final = "ok" if outcome in ("released", "unverified", "paused") else "failed"
    records.append(record(release_id, "release", final, outcome=outcome, version=version))
    return records


def states(records: list[dict]) -> dict[str, str]:
    return {s.release_id: s.state for s in summarize(records)}


def test_a_release_that_passed_its_analysis_is_verified() -> None:
    [summary] = summarize(released("r1", "2.0.0"))

    assert summary.state == "verified"
    assert summary.verified
    assert (summary.version, summary.colour, summary.previous_colour) == ("2.0.0", "green", "blue")
    assert summary.lock_id == "lock-r1"


def test_auto_rolled_back_and_failed_deploy_releases_are_bad() -> None:
    records = released("r1", "2.0.3", "rolled_back") + released(
        "r2", "2.0.1", "failed_before_switch"
    )

    assert states(records) == {"r1": "bad", "r2": "bad"}


def test_another_artifact_under_the_same_version_does_not_make_the_version_bad() -> None:
    records = [
        *released("r0", "2.0.0"),
        lock("r1", "2.0.0"),
        record("r1", "deploy", "failed", task="Install the release", check="artifact"),
        record("r1", "release", "failed", outcome="failed_before_switch", version="2.0.0"),
    ]

    assert states(records) == {"r0": "verified", "r1": "failed"}
    # 2.0.0 as it was verified still runs on its colour: a rollback may go back to it.
    assert rollback_refused_versions(summarize(records)) == {}


def test_a_release_stopped_by_its_preflight_failed_without_being_bad() -> None:
    records = [
        record("r1", "preflight", "failed"),
        record("r1", "release", "failed", outcome="failed_before_switch"),
    ]

    assert states(records) == {"r1": "failed"}


@pytest.mark.parametrize(
    ("steps", "state"),
    [((), "interrupted"), (("deploy",), "interrupted"), (("deploy", "switch"), "interrupted")],
)
def test_a_release_without_its_closing_record_is_interrupted(steps, state) -> None:
    records = [lock("r1", "2.0.0")] + [record("r1", step) for step in steps]

    [summary] = summarize(records)

    assert summary.state == state
    assert unfinished_release(records).release_id == "r1"
    assert unfinished_release(records, "lock-r1").release_id == "r1"
    assert unfinished_release(records, "some-other-lock") is None
    assert unfinished_release(records, exclude_release_id="r1") is None


def test_a_closed_release_is_not_unfinished() -> None:
    assert unfinished_release(released("r1", "2.0.0")) is None


def test_a_recover_record_closes_the_interrupted_release() -> None:
    records = [lock("r1", "2.0.0"), record("r1", "deploy"), record("r1", "switch")]
    records += [
        record("r2", "recover", recovered_release_id="r1", state="verified", outcome="resumed")
    ]

    summaries = {s.release_id: s for s in summarize(records)}

    assert summaries["r1"].state == "verified"
    assert summaries["r1"].verified
    assert summaries["r1"].recovered_by == "r2"
    assert unfinished_release(records) is None


def test_a_manual_rollback_marks_the_release_it_left_rolled_back() -> None:
    records = released("r1", "1.0.0", colour="blue", previous="green")
    records += released("r2", "2.0.0", colour="green", previous="blue")
    records += [
        record("r3", "rollback", outcome="rolled_back", previous_colour="green", colour="blue")
    ]

    assert states(records) == {"r1": "verified", "r2": "rolled-back", "r3": "done"}
    # Rolled back from, but it had passed: still a version one may go back to.
    assert "2.0.0" not in rollback_refused_versions(summarize(records))


def test_rollback_refuses_bad_and_never_verified_versions() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.1+crash", "failed_before_switch")
    records += [lock("r3", "2.0.0"), record("r3", "deploy")]
    records += [record("r4", "recover", recovered_release_id="r3", state="rolled-back")]

    refused = rollback_refused_versions(summarize(records))

    assert set(refused) == {"2.0.1+crash", "2.0.0"}
    assert "marked bad by release r2" in refused["2.0.1+crash"]
    assert "never verified" in refused["2.0.0"]


def test_a_release_nothing_measured_is_unverified_and_no_rollback_target() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.0", "unverified")
    summaries = summarize(records)

    assert states(records) == {"r1": "verified", "r2": "unverified"}
    assert not summaries[1].verified
    refused = rollback_refused_versions(summaries)
    assert set(refused) == {"2.0.0"}
    assert "nothing measured it healthy" in refused["2.0.0"]
    assert "--allow-unverified" in refused["2.0.0"]
    assert last_verified(summaries).version == "1.0.0"


def test_allow_unverified_accepts_never_verified_versions_but_never_bad_ones() -> None:
    records = released("r1", "2.0.0", "unverified") + released("r2", "2.0.1", "rolled_back")
    records += [lock("r3", "2.0.2"), record("r3", "deploy")]
    records += [record("r4", "recover", recovered_release_id="r3", state="rolled-back")]

    refused = rollback_refused_versions(summarize(records), allow_unverified=True)

    assert set(refused) == {"2.0.1"}


def test_verified_once_stays_a_target_after_an_unverified_release_of_it() -> None:
    records = released("r1", "2.0.0") + released("r2", "2.0.0", "unverified")

    assert "2.0.0" not in rollback_refused_versions(summarize(records))


def test_a_rollback_from_an_unverified_release_marks_it_rolled_back() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.0", "unverified")
    records += [
        record("r3", "lock", command="rollback", lock_id="lock-r3"),
        record("r3", "rollback", outcome="rolled_back", previous_colour="green", colour="blue"),
    ]

    assert states(records)["r2"] == "rolled-back"


def test_the_newest_verdict_on_a_version_decides() -> None:
    good_then_bad = released("r1", "2.0.0") + released("r2", "2.0.0", "rolled_back")
    bad_then_good = released("r1", "2.0.0", "rolled_back") + released("r2", "2.0.0")

    assert "2.0.0" in rollback_refused_versions(summarize(good_then_bad))
    assert "2.0.0" not in rollback_refused_versions(summarize(bad_then_good))


def test_last_verified_skips_bad_versions_and_excluded_ones() -> None:
    records = (
        released("r1", "1.0.0") + released("r2", "2.0.0") + released("r3", "2.0.3", "rolled_back")
    )
    summaries = summarize(records)

    assert last_verified(summaries).version == "2.0.0"
    assert last_verified(summaries, exclude_versions=["2.0.0"]).version == "1.0.0"


def interrupted(*steps: str):
    records = [lock("r1", "2.0.0", colour="green", previous="blue")]
    records += [record("r1", step) for step in steps]
    return unfinished_release(records)


def test_recovery_restores_the_idle_colour_when_traffic_never_moved() -> None:
    action = recovery_action(interrupted("deploy"), {"lb1": "blue", "lb2": "blue"}, "release")

    assert action.action == "restore_idle"
    assert action.traffic_colour == "blue"


@pytest.mark.parametrize(("command", "expected"), [("release", "resume"), ("rollback", "rollback")])
def test_recovery_after_a_complete_switch_resumes_a_release_or_rolls_back(
    command, expected
) -> None:
    action = recovery_action(interrupted("deploy", "switch"), {"lb1": "green"}, command)

    assert action.action == expected
    assert action.traffic_colour == ("green" if expected == "resume" else "blue")


def test_recovery_sends_a_split_switch_back_to_the_previous_colour() -> None:
    action = recovery_action(interrupted("deploy"), {"lb1": "green", "lb2": "blue"}, "release")

    assert action.action == "rollback"
    assert action.traffic_colour == "blue"
    assert "lb1=green, lb2=blue" in action.reason


def test_recovery_sends_a_canary_a_dead_controller_left_back_to_the_previous_colour() -> None:
    # As roles/bluegreen_recover names a load balancer whose canary files are still there.
    live = {
        "lb1": "blue with 25 % of clients on green",
        "lb2": "blue with 25 % of clients on green",
    }
    action = recovery_action(interrupted("deploy"), live, "release")

    assert (action.action, action.traffic_colour) == ("rollback", "blue")
    assert "lb1=blue with 25 % of clients on green" in action.reason


def test_a_torn_last_line_does_not_hide_the_releases_before_it() -> None:
    records = [*released("r1", "2.0.0"), {"garbage": True}]

    assert states(records) == {"r1": "verified"}


def test_steps_named_like_commands_inside_a_release_do_not_close_it() -> None:
    records = [lock("r1", "2.0.3"), record("r1", "deploy"), record("r1", "switch")]
    records += [record("r1", "analysis", "failed"), record("r1", "rollback", bad_version="2.0.3")]

    [summary] = summarize(records)

    assert summary.command == "release"
    assert summary.state == "interrupted"  # killed before its last play


OPENED = record("r1", "window", window="open", was_on=False)
SNAPSHOT = record("r1", "snapshot", snapshot_id="s1", in_maintenance_window=True)
WINDOW_TABLE = [
    # records after the lock, closes the window, snapshot restored first
    ([OPENED], True, None),
    ([OPENED, SNAPSHOT], True, "s1"),
    ([OPENED, SNAPSHOT, record("r1", "migrate", "failed")], True, "s1"),
    ([OPENED, SNAPSHOT, record("r1", "migrate")], True, None),
    ([OPENED, SNAPSHOT, record("r1", "migrate", "failed"), record("r1", "restore")], True, None),
    (
        [OPENED, SNAPSHOT, record("r1", "migrate"), record("r1", "window", window="closed")],
        False,
        None,
    ),
    ([record("r1", "window", window="open", was_on=True), SNAPSHOT], False, None),
    ([record("r1", "window", "failed"), SNAPSHOT], False, None),
    ([record("r1", "snapshot", snapshot_id="s0")], False, None),
]


@pytest.mark.parametrize(("after_lock", "closes", "restores"), WINDOW_TABLE)
def test_recovery_closes_a_maintenance_window_left_open_restoring_its_snapshot_first(
    after_lock: list[dict], closes: bool, restores: str | None
) -> None:
    release = unfinished_release([lock("r1", "2.0.0"), *after_lock])
    action = recovery_action(release, {"lb1": "blue"}, "release")

    assert (action.close_window, action.restore_snapshot) == (closes, restores)
    assert action.action == "restore_idle"
    if closes:
        assert "maintenance window is closed" in action.reason


def promote(release_id: str, promoted: str, outcome: str = "promoted") -> list[dict]:
    return [
        record(release_id, "lock", command="promote", lock_id=f"lock-{release_id}"),
        record(release_id, "promote", outcome=outcome, promoted=promoted),
    ]


def test_a_paused_release_waits_and_is_no_rollback_target_until_promoted() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.0", "paused")
    summaries = summarize(records)

    assert states(records) == {"r1": "verified", "r2": "paused"}
    assert paused_release(summaries).release_id == "r2"
    assert "2.0.0" in rollback_refused_versions(summaries)
    # Not interrupted: it closed itself, so no recovery picks it up.
    assert unfinished_release(records) is None


def test_promote_keeps_the_paused_release_as_a_rollback_target() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.0", "paused") + promote("r3", "r2")
    summaries = summarize(records)

    assert states(records) == {"r1": "verified", "r2": "promoted", "r3": "done"}
    assert paused_release(summaries) is None
    assert "2.0.0" not in rollback_refused_versions(summaries)
    # A person accepted it; no analysis verified it.
    assert not summaries[1].verified
    assert last_verified(summaries).version == "1.0.0"


def test_a_failed_promote_leaves_the_release_paused() -> None:
    records = released("r2", "2.0.0", "paused") + promote("r3", "r2", outcome="failed")

    assert states(records)["r2"] == "paused"


def test_a_rollback_of_a_paused_release_ends_it_rolled_back() -> None:
    records = released("r1", "1.0.0") + released("r2", "2.0.0", "paused")
    records += [
        record("r3", "lock", command="rollback", lock_id="lock-r3"),
        record("r3", "rollback", outcome="rolled_back", previous_colour="green", colour="blue"),
    ]

    assert states(records)["r2"] == "rolled-back"
    assert paused_release(summarize(records)) is None


def held_release_records(release_id: str = "r1") -> list[dict]:
    """A release deployed, judged and held before its switch, as the journal has it."""
    return [
        lock(release_id, "2.0.0"),
        record(release_id, "deploy"),
        record(release_id, "hold", held_until="2026-11-23T02:00:00Z"),
        record(
            release_id,
            "release",
            outcome="held",
            version="2.0.0",
            colour="green",
            previous_colour="blue",
            held_until="2026-11-23T02:00:00Z",
            canary_steps=[10, 50],
            live_version="1.0.0",
        ),
    ]


def test_a_held_release_waits_with_what_its_promote_goes_on_with() -> None:
    (held,) = summarize(held_release_records())

    assert held.state == "held" and not held.verified
    assert (held.held_until, held.canary_steps, held.live_version) == (
        "2026-11-23T02:00:00Z",
        [10, 50],
        "1.0.0",
    )
    assert held_release([held]) is held
    assert unfinished_release(held_release_records()) is None  # closed, not interrupted
    assert "2.0.0" in rollback_refused_versions([held])  # never verified: nothing judged it live


def test_a_promoted_held_release_reopens_and_ends_as_the_release_it_is() -> None:
    promoted = [
        *held_release_records(),
        lock("r1", "2.0.0"),
        record("r1", "switch"),
        record("r1", "analysis"),
        record("r1", "release", outcome="released", version="2.0.0", colour="green"),
    ]
    (release,) = summarize(promoted)
    assert (release.state, release.verified) == ("verified", True)
    # Its promote dying after the switch leaves it interrupted, for the next command.
    cut_short = promoted[:-2]
    assert unfinished_release(cut_short).release_id == "r1"


def test_an_abort_ends_the_held_release() -> None:
    records = [
        *held_release_records(),
        record("a1", "lock", command="abort", lock_id="lock-a1"),
        record("a1", "abort", outcome="aborted", aborted="r1"),
    ]
    held, abort = summarize(records)
    assert (held.state, abort.state) == ("aborted", "done")
    assert held_release([held, abort]) is None


HELD = {"release_id": "r1", "version": "2.0.0", "held_until": "2026-11-23T02:00:00Z"}


@pytest.mark.parametrize(
    ("read", "now", "refusal"),
    [
        ({"paused": {"release_id": "p"}, "held": None}, "2026-11-22T00:00:00Z", ""),
        (
            {"paused": None, "held": {"held_until": "2026-11-23T02:00:00Z"}},
            "2026-11-23T01:59:59Z",
            "",
        ),
        ({"paused": None, "held": None}, "2026-11-22T00:00:00Z", "nothing is paused or held"),
        (
            {
                "paused": None,
                "held": {
                    "release_id": "r1",
                    "version": "2.0.0",
                    "held_until": "2026-11-23T02:00:00Z",
                },
            },
            "2026-11-23T02:00:01Z",
            "that hold has expired",
        ),
    ],
)
def test_a_promote_is_refused_when_nothing_waits_or_the_hold_expired(
    read: dict, now: str, refusal: str
) -> None:
    said = promote_refusal(read, "sampleapp", now)
    assert (refusal in said) if refusal else said == ""
