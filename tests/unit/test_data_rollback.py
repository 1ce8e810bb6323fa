"""How a rollback with data takes the schema back (module_utils/data_rollback.py and the
data_rollback module): the way chosen for each plan, the refusals, and the messages."""

from __future__ import annotations

from typing import Any

import data_rollback
import pytest
from ansible.module_utils.data_rollback import (
    data_rollback as decide_way,
)
from ansible.module_utils.data_rollback import (
    deployed_releases,
    maintenance_since,
    method_error,
    moved_revisions,
    restore_refusal,
    restore_request,
    restored_message,
    rolled_back_message,
    snapshot_of,
)

DOWN = {"direction": "downgrade", "pending": [{"revision": "0002", "irreversible": ""}]}
IRREVERSIBLE = {
    "direction": "downgrade",
    "pending": [{"revision": "0003", "irreversible": "drops notes.author"}],
}
SNAPSHOT = {"snapshot_id": "s1", "started": "2026-12-05T10:00:00.000000Z", "release_id": "r2"}

WAY_TABLE = [
    # method, plan, snapshot, maintenance since, accept loss, mode, failure?, refusal?
    ("auto", {"direction": "none", "pending": []}, None, None, False, "switch", "", ""),
    ("auto", None, None, None, False, "switch", "", ""),
    ("auto", DOWN, None, None, False, "downgrade", "", ""),
    ("restore", DOWN, SNAPSHOT, None, False, "restore", "", "would be lost"),
    ("restore", DOWN, SNAPSHOT, None, True, "restore", "", ""),
    ("auto", IRREVERSIBLE, SNAPSHOT, "2026-12-05T09:00:00.000000Z", False, "restore", "", ""),
    ("auto", IRREVERSIBLE, SNAPSHOT, "2026-12-05T11:00:00.000000Z", False, "restore", "", "lost"),
    ("auto", IRREVERSIBLE, None, None, True, "restore", "there is no snapshot", ""),
    ("downgrade", IRREVERSIBLE, SNAPSHOT, None, True, "restore", "Use the default method", ""),
]


@pytest.mark.parametrize(
    ("method", "plan", "snapshot", "since", "accept", "mode", "failure", "refusal"), WAY_TABLE
)
def test_the_way_back_and_its_refusals(
    method: str,
    plan: dict[str, Any] | None,
    snapshot: dict[str, Any] | None,
    since: str | None,
    accept: bool,
    mode: str,
    failure: str,
    refusal: str,
) -> None:
    way = decide_way(method, plan, snapshot, since, accept, "2.0.0", "0001")
    assert way.mode == mode
    assert (failure in way.failure) if failure else way.failure == ""
    assert (refusal in way.refusal) if refusal else way.refusal == ""


def test_a_refusal_names_the_snapshot_the_loss_and_the_way_to_accept_it() -> None:
    way = decide_way("auto", IRREVERSIBLE, SNAPSHOT, None, False, "2.0.0", "0001")
    assert way.refusal.startswith(
        "the schema of 2.0.0 cannot be downgraded to 0001 (0003: drops notes.author), so the"
        " data rollback would restore snapshot s1, taken 2026-12-05T10:00:00.000000Z before"
        " release r2: every write accepted since"
    )
    assert "`bluegreen rollback --with-data --accept-data-loss`" in way.refusal
    assert way.loses_writes is True


def test_an_unknown_method_is_refused_before_anything_is_locked() -> None:
    assert method_error("auto") == ""
    assert method_error("undo") == (
        "rollback_data_method must be auto, downgrade or restore, not undo; nothing was changed"
    )


def deploy(colour: str, release_id: str, current: str | None) -> dict[str, Any]:
    migration = None if current is None else {"current": current}
    evidence = {"colour": colour, "migration": migration}
    return {"step": "deploy", "outcome": "ok", "release_id": release_id, "evidence": evidence}


def test_the_releases_are_the_newest_deploys_to_each_colour() -> None:
    records = [
        deploy("green", "r1", "0001"),
        deploy("blue", "r2", "0002"),
        {
            "step": "deploy",
            "outcome": "failed",
            "release_id": "r3",
            "evidence": {"colour": "green"},
        },
        deploy("green", "r4", "0001,0002"),
    ]
    releases = deployed_releases(records, "blue")
    assert (releases.live or {})["release_id"] == "r2"
    assert (releases.target or {})["release_id"] == "r4"
    assert releases.target_revision == "0001,0002"
    assert deployed_releases([deploy("green", "r1", None)], "blue").target_revision is None
    assert deployed_releases([], "blue").target is None
    # r4 went to green after blue's r2, yet blue is live: traffic already came back.
    assert releases.target_after_live is True
    assert deployed_releases(records[:2], "blue").target_after_live is False
    assert deployed_releases(records[:2], "green").target_after_live is True
    assert deployed_releases([deploy("green", "r1", None)], "blue").target_after_live is False


def test_a_colour_deployed_after_the_live_one_is_refused_naming_the_way_forward() -> None:
    way = decide_way(
        "auto", None, None, None, False, "1.0.0", "0002", target_after_live=True,
        target_version="2.0.0",
    )  # fmt: skip
    assert way.refusal and not way.failure
    assert "runs 2.0.0, deployed after the live 1.0.0" in way.refusal
    assert "bluegreen release --version 2.0.0" in way.refusal
    assert way.refusal.endswith("Nothing was changed")
    # Even a plan that could go down is not taken: going there is going forward.
    assert decide_way("auto", DOWN, None, None, False, "1.0.0", "0001", True, "2.0.0").refusal


def test_maintenance_counts_only_when_on_everywhere_rounded_up() -> None:
    assert maintenance_since([1764928800.2, 1764928700.0], 2) == "2025-12-05T10:00:01.000000Z"
    assert maintenance_since([1764928800.0, None], 2) is None
    assert maintenance_since([], 1) is None


def test_the_snapshot_of_the_live_release() -> None:
    assert snapshot_of([{"release_id": "r1"}, SNAPSHOT], {"release_id": "r2"}) == SNAPSHOT
    assert snapshot_of([SNAPSHOT], None) is None


def test_django_revisions_name_only_the_migrations_that_moved() -> None:
    assert moved_revisions("a.0001,b.0003", "a.0001,b.0002") == ("b.0003", "b.0002")
    assert moved_revisions("0002", "0001") == ("0002", "0001")


@pytest.mark.parametrize(
    ("mode", "kwargs", "middle"),
    [
        (
            "switch",
            {"target_revision": "0001"},
            "the schema was at 0001 already, no data change was needed",
        ),
        (
            "downgrade",
            {"downgrade": {"previous": "0002", "current": "0001"}},
            "schema downgraded from 0002 to 0001 (every row kept)",
        ),
        (
            "restore",
            {"snapshot": SNAPSHOT, "loses_writes": False},
            "database restored from snapshot s1 taken 2026-12-05T10:00:00.000000Z; maintenance"
            " mode was on since before it, so no write was lost",
        ),
    ],
)
def test_the_rolled_back_message(mode: str, kwargs: dict[str, Any], middle: str) -> None:
    message = rolled_back_message(mode, "green", "1.0.0", "blue", "2.0.0", **kwargs)
    assert message == f"traffic is back on green (1.0.0); {middle}; blue (2.0.0) stays warm"


def test_the_module_refuses_an_unknown_method(run_module) -> None:
    result = run_module(data_rollback.main, {"decide": "method", "method": "undo"})
    assert result["failed"] and "not undo" in result["msg"]
    assert run_module(data_rollback.main, {"decide": "method"}, check_mode=True)["changed"] is False


def test_the_module_chooses_the_way(run_module) -> None:
    result = run_module(
        data_rollback.main,
        {"decide": "way", "plan": DOWN, "live_version": "2.0.0", "target_revision": "0001"},
    )
    assert (result["mode"], result["failure"], result["refusal"]) == ("downgrade", "", "")
    forward = run_module(
        data_rollback.main,
        {
            "decide": "way",
            "live_version": "1.0.0",
            "target_revision": "0002",
            "target_after_live": True,
            "target_version": "2.0.0",
        },
    )
    assert "deployed after the live 1.0.0" in forward["refusal"]
    releases = run_module(
        data_rollback.main,
        {"decide": "releases", "records": [deploy("blue", "r1", "0001")], "live_colour": "blue"},
    )
    assert releases["target_after_live"] is False


MANIFEST = {"started": "2026-12-05T10:00:00Z", "release_id": "r2", "revision": "0002"}


def test_a_restore_refusal_names_the_snapshot_and_what_would_be_lost() -> None:
    assert restore_refusal("s1", MANIFEST, "db1") == (
        "restoring snapshot s1 (taken 2026-12-05T10:00:00Z on db1, release r2, revision 0002)"
        " replaces the live database: every write accepted after 2026-12-05T10:00:00Z would be"
        " lost (the current database is kept aside, not served). Nothing was changed. To"
        " accept, run `bluegreen restore s1 --yes` (bluegreen_cli.restore_confirm)"
    )
    assert "release ?, revision ?" in restore_refusal("s1", {"started": "t"}, "db1")


@pytest.mark.parametrize(
    ("was_on", "ending"),
    [
        (False, "blue is healthy and users reach it again"),
        (True, "blue is healthy; maintenance mode stays on as it was before"),
    ],
)
def test_the_restored_message_says_where_users_are(was_on: bool, ending: str) -> None:
    message = restored_message("s1", MANIFEST, "/var/lib/old.db", "blue", was_on)
    assert message == (
        "the database is back at snapshot s1 (taken 2026-12-05T10:00:00Z); the previous one is"
        f" kept as /var/lib/old.db; {ending}"
    )


@pytest.mark.parametrize(
    ("snapshot", "confirm", "listing", "confirmed"),
    [
        (" s1 ", "s1", False, True),
        ("s1", "s2", False, False),
        ("", "", True, False),
        ("s1", "", False, False),
    ],
)
def test_a_restore_is_confirmed_only_by_naming_the_same_snapshot(
    snapshot: str, confirm: str, listing: bool, confirmed: bool
) -> None:
    request = restore_request(snapshot, confirm, listing)
    assert (request.snapshot, request.confirmed) == (snapshot.strip(), confirmed)


def test_a_restore_that_names_nothing_is_refused_saying_how_to_name_one() -> None:
    with pytest.raises(ValueError, match="name the snapshot to restore"):
        restore_request("  ", "", False)
