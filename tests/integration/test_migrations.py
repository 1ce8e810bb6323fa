"""Migrations during releases, on PostgreSQL (the lab) and SQLite (the single host).

The releases that apply a migration, and the ones whose migration fails, run with a
writer in test_no_lost_writes.py, with the checks of this module.

The sample service's versions carry real migrations: 2.0.0 adds notes.author (0002,
expand), 2.0.6+breaking drops it again (0003, breaking) and 2.0.5+migfail adds a column
and then fails (0003). See examples/sampleapp/README.md.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import (
    JOURNAL_PATH,
    LAB,
    LAB_URL,
    ROOT,
    SINGLE,
    SINGLE_URL,
    Answer,
    Outcome,
    ansible,
    bluegreen,
    ensure_live,
    live,
    request,
    shell,
    wait_until,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab", "migration_artifacts")]

APP = "sampleapp"
RELEASES = f"/opt/{APP}/releases"
SQLITE_PATH = f"/var/lib/{APP}/{APP}.db"
FLOCK_PATH = f"/var/lib/{APP}/.bluegreen-migrate.lock"
PORTS = {"blue": 8001, "green": 8002}
COLUMNS_1_0 = ["id", "body", "created_at", "colour", "version"]
COLUMNS_2_0 = [*COLUMNS_1_0, "author"]


@dataclass(frozen=True)
class Lab:
    """One of the two labs, as these tests need to know it."""

    inventory: str
    url: str
    engine: str
    db_host: str
    # (host, colour) of every colour.
    colours: tuple[tuple[str, str], ...]

    def host_of(self, colour: str) -> str:
        return next(host for host, each in self.colours if each == colour)


POSTGRESQL = Lab(LAB, LAB_URL, "postgresql", "db1", (("app-blue", "blue"), ("app-green", "green")))
SQLITE = Lab(SINGLE, SINGLE_URL, "sqlite", "single1", (("single1", "blue"), ("single1", "green")))
BOTH = pytest.mark.parametrize("lab_", [POSTGRESQL, SQLITE], ids=["postgresql", "sqlite"])


@pytest.fixture(scope="module")
def migration_artifacts() -> None:
    for version in ("2.0.5+migfail", "2.0.6+breaking"):
        if not (ROOT / "artifacts" / f"{APP}-{version}.tar.gz").exists():
            pytest.fail(f"artifacts/{APP}-{version}.tar.gz is missing; run `make artifacts` first")


def sql(lab_: Lab, query: str) -> str:
    """One query against the service's database, as its administrator; the output."""
    if lab_.engine == "postgresql":
        command = f'cd / && runuser -u postgres -- psql -d {APP} -Atc "{query}"'
    else:
        command = f'sqlite3 {SQLITE_PATH} "{query}"'
    result = shell(lab_.db_host, command, lab_.inventory)
    assert result.get("rc") == 0, result
    return result["stdout"].strip()


def schema(lab_: Lab) -> tuple[list[str], str]:
    """The columns of notes, in order, and the revision alembic_version records."""
    if lab_.engine == "postgresql":
        columns = sql(
            lab_,
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_name = 'notes'",
        )
    else:
        columns = sql(lab_, "SELECT group_concat(name, ',') FROM pragma_table_info('notes')")
    return columns.split(","), sql(lab_, "SELECT version_num FROM alembic_version")


def migrator(lab_: Lab, host: str, colour: str, version: str, **options: Any) -> dict:
    """migration_runner on `host` from the installed `version`, as the service's user."""
    args = {
        "name": APP,
        "tool": "alembic",
        "chdir": f"{RELEASES}/{version}",
        "command": [f"{APP}-migrate"],
        "env_file": f"/etc/{APP}/{colour}.env",
        "state": "upgraded",
        "lock_timeout": 0,
    } | options
    return ansible(host, "migration_runner", args, lab_.inventory, become_user=APP)


def colour_health(lab_: Lab, colour: str) -> dict:
    """The health answer of one colour, asked directly (not through nginx)."""
    url = f"http://127.0.0.1:{PORTS[colour]}/health"
    result = shell(lab_.host_of(colour), f"curl -s {url}", lab_.inventory)
    return json.loads(result["stdout"])


def journal_entry(lab_: Lab, release_id: str, step: str) -> dict:
    lines = shell("lb1" if lab_ is POSTGRESQL else "single1", f"cat {JOURNAL_PATH}", lab_.inventory)
    entries = [json.loads(line) for line in lines["stdout"].splitlines()]
    [entry] = [e for e in entries if e["release_id"] == release_id and e["step"] == step]
    return entry


def assert_0002_applied_and_the_old_colour_serves(
    lab_: Lab, released: Outcome, old: Answer, written: Answer
) -> None:
    """After 1.0.0 -> 2.0.0: 0002 applied and journaled, 1.0.0 still serving on it."""
    assert schema(lab_) == (COLUMNS_2_0, "0002")
    release_id = released.report["custom_stats"]["bluegreen_release_id"]
    migration = journal_entry(lab_, release_id, "deploy")["evidence"]["migration"]
    assert (migration["previous"], migration["current"], migration["applied"]) == (
        "0001",
        "0002",
        ["0002"],
    )
    assert migration["executed_statements"] > 0
    # The old colour, still warm for a rollback, serves on the new schema.
    old_health = colour_health(lab_, old.colour)
    assert (old_health["status"], old_health["version"]) == ("ok", "1.0.0")
    assert old_health["schema_revision"] == "0002"
    created = request(lab_.url, "/notes", {"body": "signed", "author": "ada"})
    assert (created.status, created.version) == (201, "2.0.0")
    note = json.loads(request(lab_.url, f"/notes/{json.loads(created.body)['id']}").body)
    assert note["author"] == "ada"
    kept = json.loads(request(lab_.url, f"/notes/{json.loads(written.body)['id']}").body)
    assert (kept["body"], kept["author"]) == ("written by 1.0.0", None)


def test_breaking_migration_is_refused_naming_operation_and_file() -> None:
    ensure_live("2.0.0")
    before = (schema(POSTGRESQL), live())

    refused = bluegreen("release", "--version", "2.0.6+breaking")

    assert refused.exit_code == 3, refused.report
    assert "drop column notes.author" in refused.message
    assert "sampleapp/migrations/fault_breaking/0003_drop_notes_author.py" in refused.message
    assert "allow_breaking" in refused.message
    after = live()
    assert schema(POSTGRESQL) == before[0] == (COLUMNS_2_0, "0002")
    assert (after.colour, after.version) == (before[1].colour, "2.0.0")


def lock_is_held(lab_: Lab) -> bool:
    if lab_.engine == "postgresql":
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        return sql(lab_, held) != "0"
    # A migrator writes its holder record into the file once it has the flock.
    record = shell(lab_.db_host, f"cat {FLOCK_PATH}", lab_.inventory)
    return record.get("rc") == 0 and bool(record["stdout"].strip())


@BOTH
def test_second_migrator_fails_at_once_naming_the_holder(lab_: Lab) -> None:
    ensure_live("2.0.0", inventory=lab_.inventory)
    colour = live(lab_.url).colour
    host = lab_.host_of(colour)
    gate = f"/tmp/bluegreen-test-gate-{uuid.uuid4().hex}"
    # The first migrator is real and takes the real lock; its tool only starts once the
    # test opens the gate, so it holds the lock for as long as the test needs.
    slow_tool = ["sh", "-c", f'until [ -e {gate} ]; do sleep 0.2; done; exec {APP}-migrate "$@"']

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(
            migrator, lab_, host, colour, "2.0.0", command=[*slow_tool, "-"], release="first"
        )
        try:
            assert wait_until(lambda: lock_is_held(lab_), timeout=90, interval=1)
            second = migrator(lab_, host, colour, "2.0.0", release="second")
        finally:
            shell(host, f"touch {gate}", lab_.inventory)
        first_result = first.result()
    shell(host, f"rm -f {gate}", lab_.inventory)

    assert second.get("failed") is True, second
    assert f"migration lock for {APP} is held by" in second["msg"]
    assert "nothing was migrated" in second["msg"]
    assert (second["holder"]["hostname"], second["holder"]["release"]) == (host, "first")
    assert str(second["holder"]["pid"]) in second["msg"]
    assert second["lock"]["held"] is False
    assert not first_result.get("failed"), first_result
    assert first_result["lock"]["held"] is True
    assert schema(lab_) == (COLUMNS_2_0, "0002")
