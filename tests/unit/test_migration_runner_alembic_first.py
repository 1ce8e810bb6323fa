"""migration_runner's own reads of a PostgreSQL database, with the server and Alembic faked.

The module asks the database itself whether it has tables (a first schema is not checked)
and what alembic_version records before and after the tool's read-only commands (a tool
that migrates when its application starts is caught). Here the PostgreSQL session is a
FakePostgres and the tool a FakeAlembic over the same three revisions as the fixture
project; test_migration_runner_postgresql.py runs the real thing when a server is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import migration_runner
import pytest
from ansible.module_utils.common import warnings as ansible_warnings

URL = "postgresql://app:pw@db.example/app"
# revision: (parent, message, upgrade SQL)
REVISIONS = {
    "0001": (
        None,
        "create items",
        "CREATE TABLE items (id SERIAL NOT NULL, name TEXT NOT NULL, legacy_code TEXT, "
        "PRIMARY KEY (id));",
    ),
    "0002": ("0001", "backfill a note", "ALTER TABLE items ADD COLUMN note TEXT;"),
    "0003": ("0002", "drop a column", "ALTER TABLE items DROP COLUMN legacy_code;"),
}
ORDER = list(REVISIONS)
OFFLINE_ERROR = "TypeError: 'NoneType' object is not iterable"


class FakePostgres:
    """The database, as the session migration_runner opens to read it answers."""

    driver = "psycopg"

    def __init__(self, tables: set[str], version: str | None = None) -> None:
        self.tables = set(tables)
        self.version = version
        self.sessions: list[dict[str, str]] = []
        self.open = 0

    def connect(self, params: dict[str, str]) -> FakePostgres:
        self.sessions.append(params)
        self.open += 1
        return self

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        if sql == migration_runner.READ_ONLY_SESSION_SQL:
            return []
        if "pg_class" in sql:
            return [(str(len(self.tables - {"alembic_version"})),)]
        if "to_regclass('alembic_version')" in sql:
            return [("alembic_version" if "alembic_version" in self.tables else "",)]
        if sql == "SELECT version_num FROM alembic_version":
            return [(self.version,)] if self.version else []
        raise AssertionError(f"unexpected query: {sql}")

    def close(self) -> None:
        self.open -= 1


class FakeAlembic:
    """Alembic's answers over a FakePostgres; `unrenderable` revisions fail offline."""

    def __init__(
        self, database: FakePostgres, unrenderable: set[str], migrates_on_start: bool = False
    ) -> None:
        self.database = database
        self.unrenderable = unrenderable
        self.migrates_on_start = migrates_on_start
        self.commands: list[list[str]] = []

    def run(self, args: list[str]) -> migration_runner.Completed:
        self.commands.append(args)
        if self.migrates_on_start:
            self.upgrade_to(ORDER[-1])
        if args[0] == "history":
            return self.completed(args, self.history())
        if args[0] == "current":
            return self.completed(args, self.database.version or "")
        if args[-1] == "--sql":
            return self.offline(args)
        self.upgrade_to(args[1] if args[1] != "head" else ORDER[-1])
        return self.completed(args, "")

    def upgrade_to(self, revision: str) -> None:
        self.database.tables |= {"alembic_version", "items"}
        self.database.version = revision

    def history(self) -> str:
        entries = []
        for revision in reversed(ORDER):
            parent, message, _ = REVISIONS[revision]
            marks = " (head)" if revision == ORDER[-1] else ""
            marks += " (current)" if revision == self.database.version else ""
            entries.append(
                f"Rev: {revision}{marks}\nParent: {parent or '<base>'}\n"
                f"Path: /srv/app/migrations/versions/{revision}.py\n\n    {message}\n"
            )
        return "\n".join(entries)

    def offline(self, args: list[str]) -> migration_runner.Completed:
        start, _, end = args[1].rpartition(":")
        revisions = ORDER[(ORDER.index(start) + 1 if start else 0) : ORDER.index(end) + 1]
        if self.unrenderable & set(revisions):
            return migration_runner.Completed(["alembic", *args], 1, "", OFFLINE_ERROR)
        sql = ["BEGIN;"]
        for revision in revisions:
            parent, _, statement = REVISIONS[revision]
            sql += [f"-- Running upgrade {parent or ''} -> {revision}", statement]
        return self.completed(args, "\n\n".join([*sql, "COMMIT;"]))

    @staticmethod
    def completed(args: list[str], stdout: str) -> migration_runner.Completed:
        return migration_runner.Completed(["alembic", *args], 0, stdout, "")


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    ansible_warnings._global_warnings.clear()


@pytest.fixture
def release(tmp_path: Path) -> Path:
    directory = tmp_path / "releases" / "7.1.1"
    directory.mkdir(parents=True)
    return directory


def serve(
    monkeypatch: pytest.MonkeyPatch,
    database: FakePostgres,
    unrenderable: set[str] = frozenset(),
    migrates_on_start: bool = False,
) -> FakeAlembic:
    """Run `database` as the server and a FakeAlembic over it as the tool."""
    tool = FakeAlembic(database, set(unrenderable), migrates_on_start)
    monkeypatch.setattr(migration_runner.Runner, "run", lambda self, args: tool.run(args))
    monkeypatch.setattr(
        migration_runner, "pg_session", lambda module, params: database.connect(params)
    )
    return tool


def planned(run_module, release: Path) -> dict[str, Any]:
    return run_module(
        migration_runner.main,
        {
            "name": "ihatemoney",
            "tool": "alembic",
            "chdir": str(release),
            "command": [sys.executable],
            "environment": {"DATABASE_URL": URL},
            "state": "planned",
        },
    )


def warnings_of(result: dict[str, Any]) -> list[str]:
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def test_first_release_on_an_empty_database_is_its_first_schema_though_a_step_cannot_render(
    run_module, monkeypatch: pytest.MonkeyPatch, release: Path
) -> None:
    # An alembic_version table alone (left by an earlier failed attempt) is still empty.
    database = FakePostgres(tables={"alembic_version"})
    tool = serve(monkeypatch, database, unrenderable={"0002"})

    result = planned(run_module, release)

    assert result["refusal"] is None
    assert result["breaking"] == []
    assert [s["operation"] for item in result["pending"] for s in item["statements"]] == [
        "first schema"
    ] * 3
    assert (
        "the database has no tables: no running colour can depend on its schema, so the 3 "
        "migration(s) are applied without checking for breaking operations" in warnings_of(result)
    )
    assert [args for args in tool.commands if "--sql" in args] == [["upgrade", "0003", "--sql"]]
    assert [session["application_name"] for session in database.sessions] == [
        "bluegreen-migrate-read"
    ]
    assert database.open == 0


def test_a_database_at_base_with_tables_of_its_own_is_checked_step_by_step(
    run_module, monkeypatch: pytest.MonkeyPatch, release: Path
) -> None:
    tool = serve(monkeypatch, FakePostgres(tables={"legacy_accounts"}), unrenderable={"0002"})

    result = planned(run_module, release)

    plan = {item["revision"]: item for item in result["pending"]}
    assert plan["0001"]["statements"][0]["operation"] == "create table items"
    assert plan["0002"]["statements"][0]["operation"] == "unknown SQL"
    assert OFFLINE_ERROR in plan["0002"]["reason"]
    # 0003 is still judged with what 0001 created: a column of a table new in this plan.
    assert plan["0003"]["statements"][0]["operation"] == "drop column items.legacy_code"
    assert plan["0003"]["classification"] == "expand-safe"
    assert result["refusal"].startswith(
        "refusing to upgrade: 1 breaking operation(s): unknown SQL in 0002 "
    )
    assert [args[1] for args in tool.commands if "--sql" in args] == [
        "0003",
        "0001",
        "0001:0002",
        "0002:0003",
    ]


def test_without_a_postgresql_driver_the_first_release_is_checked_and_says_why(
    run_module, monkeypatch: pytest.MonkeyPatch, release: Path
) -> None:
    real_pg_session = migration_runner.pg_session
    serve(monkeypatch, FakePostgres(tables=set()), unrenderable={"0002"})
    monkeypatch.setattr(migration_runner, "pg_session", real_pg_session)
    monkeypatch.setattr(migration_runner, "PG_DRIVERS", ())

    result = planned(run_module, release)

    no_driver = "no PostgreSQL driver on this host: psycopg2, psycopg 3 or psql"
    assert warnings_of(result) == [
        f"could not read alembic_version before running the tool ({no_driver}), so bluegreen "
        "cannot tell whether the tool migrates the database by itself when it should only read",
        f"could not tell whether the database is empty ({no_driver}), so its first migrations "
        "are checked for breaking operations as on a database in use",
    ]
    assert "unknown SQL in 0002" in result["refusal"]


def test_a_server_that_cannot_be_reached_is_tried_once(
    run_module, monkeypatch: pytest.MonkeyPatch, release: Path
) -> None:
    serve(monkeypatch, FakePostgres(tables=set()))
    attempts: list[dict[str, str]] = []

    def refused(module: Any, params: dict[str, str]) -> FakePostgres:
        attempts.append(params)
        raise OSError("connection refused")

    monkeypatch.setattr(migration_runner, "pg_session", refused)

    result = planned(run_module, release)

    assert len(attempts) == 1
    assert any(
        "could not connect to PostgreSQL for a read-only check (host db.example, dbname app, "
        "user app): connection refused" in warning
        for warning in warnings_of(result)
    )
    assert "pw" not in "".join(warnings_of(result))
    assert not result["failed"]


def test_a_tool_that_migrates_when_its_application_starts_is_caught(
    run_module, monkeypatch: pytest.MonkeyPatch, release: Path
) -> None:
    database = FakePostgres(tables=set())
    serve(monkeypatch, database, migrates_on_start=True)

    result = planned(run_module, release)

    assert result["failed"] is True
    assert result["msg"].startswith(
        "the migration tool changed the database while bluegreen only read it "
        "(alembic_version went from none to 0003): "
    )
    assert result["changed"] is True
    assert result["migrated_while_reading"] == {
        "table": "alembic_version",
        "before": None,
        "after": "0003",
    }
    assert database.open == 0
