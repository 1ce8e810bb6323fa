"""migration_runner's PostgreSQL advisory lock, against a real server.

Runs only when BLUEGREEN_TEST_PG_DSN names a PostgreSQL server whose user may create
databases, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres`` (in the lab: db1's
PostgreSQL 15). Each test migrates the Alembic fixture project into a fresh database that
it drops afterwards, once for every lock driver available here (psycopg2, psycopg 3, psql).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import migration_runner
import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.migration_lock import LockHolder, application_name
from ansible.module_utils.migration_runner import default_lock_key

DSN = os.environ.get("BLUEGREEN_TEST_PG_DSN", "")
FIXTURE = Path(__file__).parent / "fixtures" / "migrations" / "alembic_project"
ALEMBIC = Path(sys.executable).parent / "alembic"

pytestmark = pytest.mark.skipif(not DSN, reason="BLUEGREEN_TEST_PG_DSN is not set")
psycopg = pytest.importorskip("psycopg") if DSN else None


def available_drivers() -> list[str]:
    drivers = []
    for name in ("psycopg2", "psycopg"):
        try:
            __import__(name)
        except ImportError:
            continue
        drivers.append(name)
    if shutil.which("psql"):
        drivers.append("psql")
    return drivers


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    ansible_warnings._global_warnings.clear()


@pytest.fixture(params=available_drivers() if DSN else ["none"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(migration_runner, "PG_DRIVERS", (request.param,))
    return request.param


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh database for one test, as a SQLAlchemy URL for the psycopg 3 driver."""
    name = f"bluegreen_mr_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"cannot connect to BLUEGREEN_TEST_PG_DSN: {exc}")
    try:
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the BLUEGREEN_TEST_PG_DSN user may not create databases")
        parts = urlsplit(DSN)
        url = urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", parts.query, ""))
        yield url
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    directory = tmp_path / "releases" / "3.0.0"
    shutil.copytree(FIXTURE, directory)
    return directory


def args(release: Path, url: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sampleapp",
        "tool": "alembic",
        "chdir": str(release),
        "command": [str(ALEMBIC), "-c", "alembic.ini"],
        "environment": {"DATABASE_URL": url},
        "state": "upgraded",
        "target": "0002",
    }
    base.update(overrides)
    return base


def advisory_locks(url: str, key: int) -> int:
    high, low = (key & 0xFFFFFFFFFFFFFFFF) >> 32, key & 0xFFFFFFFF
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = %s AND objid::bigint = %s",
            (high, low),
        ).fetchone()
    return row[0]


def test_upgrade_holds_the_advisory_lock_and_releases_it(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    result = run_module(migration_runner.main, args(release, database_url))

    assert result["changed"] is True, result.get("msg")
    assert result["current"] == "0002"
    assert result["lock"]["method"] == "postgresql"
    assert result["lock"]["driver"] == driver
    assert result["lock"]["key"] == default_lock_key("sampleapp")
    assert any(
        s.startswith("ALTER TABLE items ADD COLUMN note") for s in result["executed_statements"]
    )
    assert advisory_locks(database_url, default_lock_key("sampleapp")) == 0


def test_second_migrator_fails_at_once_naming_the_holder(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    key = default_lock_key("sampleapp")
    since = time.time() - 42
    holder = LockHolder("sampleapp", "app-blue", 31337, "2.9.0", since)
    with psycopg.connect(
        libpq_url(database_url), autocommit=True, application_name=application_name(holder)
    ) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        started = time.monotonic()
        result = run_module(migration_runner.main, args(release, database_url))
        elapsed = time.monotonic() - started

    assert result["failed"] is True
    assert "held by app-blue pid 31337 (release 2.9.0)" in result["msg"]
    assert f"PostgreSQL advisory lock {key}" in result["msg"]
    assert result["holder"]["hostname"] == "app-blue"
    assert elapsed < 20
    with psycopg.connect(libpq_url(database_url)) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'items'"
        ).fetchone()[0]
    assert tables == 0


def test_lock_timeout_waits_for_the_holder_to_finish(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    key = default_lock_key("sampleapp")
    other = psycopg.connect(libpq_url(database_url), autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", (key,))
    unlocker = threading.Timer(1.0, other.close)
    unlocker.start()
    try:
        result = run_module(migration_runner.main, args(release, database_url, lock_timeout=30))
    finally:
        unlocker.join()

    assert result["changed"] is True, result.get("msg")
    assert result["lock"]["waited_s"] >= 0.5


def test_unreachable_server_says_what_to_check(run_module, driver: str, release: Path) -> None:
    url = "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"

    result = run_module(migration_runner.main, args(release, url))

    assert result["failed"] is True
    assert "migration lock" in result["msg"]
    assert "pw" not in result["msg"].replace("pw@", "")


ADD_NOTE = 'op.add_column("items", sa.Column("note", sa.Text, nullable=True))'
# Iterates rows through the connection, like ihatemoney's b78f8a8bdb16: it runs online but
# cannot be rendered offline.
READS_ROWS = """
    for (item_id,) in op.get_bind().execute(sa.text("SELECT id FROM items")):
        op.execute(sa.text(f"UPDATE items SET note = 'n' WHERE id = {item_id}"))"""


def make_0002_read_rows(release: Path) -> None:
    revision = release / "migrations" / "versions" / "0002_add_items_note.py"
    revision.write_text(revision.read_text().replace(ADD_NOTE, ADD_NOTE + READS_ROWS))


def test_first_release_on_an_empty_database_applies_a_step_that_cannot_render(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    make_0002_read_rows(release)

    result = run_module(migration_runner.main, args(release, database_url, target="head"))

    assert result["changed"] is True, result.get("msg")
    assert result["current"] == "0003"
    assert [s["operation"] for item in result["pending"] for s in item["statements"]] == [
        "first schema"
    ] * 3


def test_a_database_at_base_with_tables_of_its_own_is_checked(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("CREATE SCHEMA billing")
        connection.execute("CREATE TABLE billing.accounts (id integer)")
    make_0002_read_rows(release)

    result = run_module(
        migration_runner.main, args(release, database_url, state="planned", target="head")
    )

    assert result["refusal"].startswith(
        "refusing to upgrade: 1 breaking operation(s): unknown SQL in 0002 "
    )
    assert result["pending"][0]["statements"][0]["operation"] == "create table items"


# ihatemoney's `flask db`: creating the application upgrades to head before the command.
MIGRATES_ON_START = """#!{python}
import os, subprocess, sys
alembic = [{alembic!r}, "-c", "alembic.ini"]
subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True)
os.execv(alembic[0], [*alembic, *sys.argv[1:]])
"""


def test_a_tool_that_migrates_when_its_application_starts_is_caught(
    run_module, driver: str, database_url: str, release: Path
) -> None:
    script = release / "migrate-on-start"
    script.write_text(MIGRATES_ON_START.format(python=sys.executable, alembic=str(ALEMBIC)))
    script.chmod(0o755)

    result = run_module(
        migration_runner.main,
        args(release, database_url, state="planned", command=[str(script)]),
    )

    assert result["failed"] is True
    assert "(alembic_version went from none to 0003)" in result["msg"]
    assert result["changed"] is True
    assert result["current"] == "0003"
