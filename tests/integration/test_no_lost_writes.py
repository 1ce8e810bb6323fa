"""No acknowledged write is lost: a writer inserts notes through nginx during releases with
migrations, failed migrations and a data rollback, on PostgreSQL (LAB) and SQLite (SINGLE).

Acknowledged means the writer got a 2xx with the note's id; afterwards every such note is
read back through nginx with the same body. 503s with Retry-After (maintenance mode) are
not acknowledged. The tests of one engine run in order: each leaves what the next needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import (
    BLUEGREEN,
    JOURNAL_PATH,
    LAB,
    LAB_URL,
    ROOT,
    SINGLE,
    SINGLE_URL,
    bluegreen,
    live,
    request,
    shell,
)

sys.path.insert(0, str(ROOT / "bench"))

from _load import Writer, WriteTally, check_writes
from test_crash_recovery import journal_lines, killed_after, recovery_of
from test_migrations import (
    COLUMNS_1_0,
    COLUMNS_2_0,
    POSTGRESQL,
    SQLITE,
    assert_0002_applied_and_the_old_colour_serves,
    schema,
)

pytestmark = [pytest.mark.lab, pytest.mark.fresh_lab, pytest.mark.usefixtures("lab")]

BASE, NEW, MIGFAIL = "1.0.0", "2.0.0", "2.0.5+migfail"


def health(base: str) -> dict:
    answer = request(base, "/health")
    return json.loads(answer.body) if answer.status == 200 else {}


def at_base(inventory: str, base: str) -> None:
    """1.0.0 live on schema 0001, deployed on 0001 as its journal says.

    The data rollback goes back to the revision the previous release was deployed on, so
    1.0.0 must have been released onto 0001: on a lab other tests already moved to 0002,
    that takes new containers (`make integration` runs this module first on fresh labs).
    """
    state = health(base)
    if state.get("version") == BASE and state.get("schema_revision") == "0001":
        return
    if state:
        for action in ("down", "up"):
            completed = subprocess.run(
                [*BLUEGREEN, "lab", action, inventory], cwd=ROOT, capture_output=True, text=True
            )
            assert completed.returncode == 0, completed.stdout + completed.stderr
    released = bluegreen("release", "--version", BASE, "-i", inventory)
    if released.exit_code == 3 and "pre-switch analysis" in released.message:
        # This runs first on a fresh lab, while every other group installs its own labs
        # on the same two cores: a load step that finds the machine saturated is refused
        # on its latency (p95 1.9 s at a load average of 12). That judges the machine,
        # not the release under test, so the setup tries once more.
        time.sleep(30)
        released = bluegreen("release", "--version", BASE, "-i", inventory)
    assert released.exit_code == 0, released.report
    assert health(base).get("schema_revision") == "0001"


@contextmanager
def writing(base: str, tag: str) -> Iterator[Writer]:
    with Writer(base, tag=tag) as writer:
        time.sleep(2)
        yield writer
        time.sleep(2)


def assert_none_lost(tally: WriteTally) -> None:
    assert tally.acknowledged > 0, tally.as_dict()
    assert tally.lost == 0, tally.as_dict()


class TestPostgreSQL:
    def test_release_with_a_migration_applies_it_and_loses_no_acknowledged_write(self) -> None:
        at_base(LAB, LAB_URL)
        old = live(LAB_URL)
        written = request(LAB_URL, "/notes", {"body": "written by 1.0.0"})
        assert written.status == 201
        with writing(LAB_URL, "pg-release") as writer:
            released = bluegreen("release", "--version", NEW)
        assert released.exit_code == 0, released.report
        assert_0002_applied_and_the_old_colour_serves(POSTGRESQL, released, old, written)
        assert_none_lost(check_writes(LAB_URL, writer.writes))

    def test_failed_migration_leaves_the_schema_and_every_write(self) -> None:
        before = live(LAB_URL)
        with writing(LAB_URL, "pg-migfail") as writer:
            failed = bluegreen("release", "--version", MIGFAIL)
        assert failed.exit_code == 3, failed.report
        assert "alembic upgrade failed while running 0003" in failed.message
        assert 'column "bodyy" does not exist' in failed.message
        # Transactional DDL: the column 0003 added before its UPDATE failed is gone too.
        assert schema(POSTGRESQL) == (COLUMNS_2_0, "0002")
        after = live(LAB_URL)
        assert (after.status, after.colour, after.version) == (200, before.colour, NEW)
        assert_none_lost(check_writes(LAB_URL, writer.writes))

    def test_rollback_with_data_downgrades_under_the_old_colour_and_keeps_every_write(
        self,
    ) -> None:
        with writing(LAB_URL, "pg-rollback") as writer:
            rolled = bluegreen("rollback", "--with-data", "--allow-unverified")
        assert rolled.exit_code == 0, rolled.report
        assert "downgraded" in rolled.message
        assert health(LAB_URL)["version"] == BASE
        assert health(LAB_URL)["schema_revision"] == "0001"
        assert schema(POSTGRESQL) == (COLUMNS_1_0, "0001")  # notes.author is gone
        tally = check_writes(LAB_URL, writer.writes)
        assert_none_lost(tally)
        assert tally.maintenance_503 == 0  # a downgrade needs no maintenance window


@pytest.mark.lab_group("single2")
class TestSQLite:
    def test_release_with_a_migration_applies_it_and_loses_no_acknowledged_write(self) -> None:
        at_base(SINGLE, SINGLE_URL)
        old = live(SINGLE_URL)
        written = request(SINGLE_URL, "/notes", {"body": "written by 1.0.0"})
        assert written.status == 201
        with writing(SINGLE_URL, "sqlite-release") as writer:
            released = bluegreen("release", "--version", NEW, "-i", SINGLE)
        assert released.exit_code == 0, released.report
        assert_0002_applied_and_the_old_colour_serves(SQLITE, released, old, written)
        assert_none_lost(check_writes(SINGLE_URL, writer.writes))
        # One host: nginx in front of both colours, each on its own port, one SQLite file.
        assert live(SINGLE_URL).colour == ("blue" if old.colour == "green" else "green")
        ports = shell("single1", "ss -ltnH '( sport = :8001 or sport = :8002 )' | wc -l", SINGLE)
        assert ports["stdout"].strip() == "2"

    def test_failed_migration_is_undone_by_the_snapshot_taken_in_the_window(self) -> None:
        with writing(SINGLE_URL, "sqlite-migfail") as writer:
            failed = bluegreen("release", "--version", MIGFAIL, "-i", SINGLE)
        assert failed.exit_code == 3, failed.report
        assert "restored from snapshot" in failed.message
        assert schema(SQLITE) == (COLUMNS_2_0, "0002")  # no word_count: the snapshot is back
        assert health(SINGLE_URL)["version"] == NEW
        assert request(SINGLE_URL, "/").status == 200  # maintenance is off again
        tally = check_writes(SINGLE_URL, writer.writes)
        assert_none_lost(tally)
        assert tally.maintenance_503 > 0  # users were told to come back, not lied to

    def test_rollback_with_data_downgrades_and_keeps_every_write(self) -> None:
        with writing(SINGLE_URL, "sqlite-rollback") as writer:
            rolled = bluegreen("rollback", "--with-data", "--allow-unverified", "-i", SINGLE)
        assert rolled.exit_code == 0, rolled.report
        assert health(SINGLE_URL)["version"] == BASE
        assert schema(SQLITE) == (COLUMNS_1_0, "0001")  # notes.author is gone
        assert_none_lost(check_writes(SINGLE_URL, writer.writes))

    def test_controller_killed_inside_the_window_the_next_release_closes_it_and_loses_nothing(
        self,
    ) -> None:
        at_base(SINGLE, SINGLE_URL)
        with writing(SINGLE_URL, "sqlite-killed") as writer:
            # kill -9 right after the snapshot inside the maintenance window: users get 503
            # until a command finishes what the dead controller left.
            killed = killed_after("snapshot", "release", "--version", NEW)
            assert request(SINGLE_URL, "/").status == 503
            released = bluegreen("release", "--version", NEW, "-i", SINGLE)
        assert released.exit_code == 0, released.report
        recovery = recovery_of(killed)
        [snapshot] = [
            r for r in journal_lines() if r["release_id"] == killed and r["step"] == "snapshot"
        ]
        assert snapshot["evidence"]["in_maintenance_window"] is True
        assert recovery["evidence"]["window_closed"] is True
        assert recovery["evidence"]["restored_snapshot"] == snapshot["evidence"]["snapshot_id"]
        assert "maintenance window is closed" in recovery["message"]
        assert request(SINGLE_URL, "/").status == 200  # maintenance is off
        assert schema(SQLITE) == (COLUMNS_2_0, "0002")  # the schema of the version now live
        assert health(SINGLE_URL)["version"] == NEW
        tally = check_writes(SINGLE_URL, writer.writes)
        assert_none_lost(tally)
        assert tally.maintenance_503 > 0

    def test_restoring_by_rollback_is_refused_naming_what_would_be_lost(self) -> None:
        # The release of the test before left NEW live, deployed onto 0002 by a migration.
        if health(SINGLE_URL).get("version") != NEW:
            at_base(SINGLE, SINGLE_URL)
            assert bluegreen("release", "--version", NEW, "-i", SINGLE).exit_code == 0
        note = request(SINGLE_URL, "/notes", {"body": "written after the release"})
        assert note.status == 201

        refused = bluegreen(
            "rollback", "--with-data", "--method", "restore", "--allow-unverified", "-i", SINGLE
        )

        assert refused.exit_code == 2, refused.report
        assert refused.outcome == "refused"
        assert "would be lost" in refused.message and "--accept-data-loss" in refused.message
        assert health(SINGLE_URL)["version"] == NEW  # nothing changed
        # The refusal closes the command in the journal: no later command takes it for an
        # interrupted one to recover.
        release_id = refused.report["custom_stats"]["bluegreen_release_id"]
        journal = shell("single1", f"cat {JOURNAL_PATH}", SINGLE)["stdout_lines"]
        records = [r for r in map(json.loads, journal) if r["release_id"] == release_id]
        first, last = records[0], records[-1]
        assert (first["step"], first["evidence"]["command"]) == ("lock", "rollback")
        assert (last["step"], last["evidence"]["outcome"]) == ("rollback", "refused")
        note_id = json.loads(note.body)["id"]
        assert request(SINGLE_URL, f"/notes/{note_id}").status == 200
