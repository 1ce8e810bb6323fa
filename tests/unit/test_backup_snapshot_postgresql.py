"""backup_snapshot against a real PostgreSQL: pg_dump, verification by pg_restore, restore + swap.

The server is either the one in BLUEGREEN_TEST_PG_DSN (postgresql://user:password@host:port/db;
the role must be a superuser, since the tests create, rename and drop databases and terminate
sessions), or a throwaway cluster started from the local server binaries
(/usr/lib/postgresql/<version>/bin/initdb, Debian's postgresql-<version>) in a temporary
directory, listening only on a Unix socket there. PostgreSQL refuses to run as root, so as
root the cluster runs as `nobody`. Without either, the tests are skipped with the reason.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import backup_snapshot
import pytest
from test_backup_snapshot_encrypted import flip_byte
from test_backup_snapshot_module import rewrite_manifest_for

CLUSTER_USER = "nobody"
PORT = 5432


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str | None

    def login(self) -> dict[str, Any]:
        login = {"login_host": self.host, "login_port": self.port, "login_user": self.user}
        if self.password:
            login["login_password"] = self.password
        return login

    def client_args(self, *extra: str) -> list[str]:
        return ["psql", "-X", "-h", self.host, "-p", str(self.port), "-U", self.user, *extra]

    def psql(self, database: str, sql: str) -> str:
        env = dict(os.environ, PGPASSWORD=self.password or "")
        completed = subprocess.run(
            [*self.client_args("-At", "-v", "ON_ERROR_STOP=1", "-d", database), "-c", sql],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.strip()

    def databases(self, prefix: str) -> set[str]:
        text = self.psql("postgres", "SELECT datname FROM pg_database")
        return {name for name in text.splitlines() if name.startswith(prefix)}


def _server_from_dsn(dsn: str) -> Server:
    url = urlsplit(dsn)
    return Server(
        host=url.hostname or "/var/run/postgresql",
        port=url.port or PORT,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password) if url.password else None,
    )


def _initdb() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return found[-1] if found else shutil.which("initdb")


def _as_cluster_user(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        args = ["runuser", "-u", CLUSTER_USER, "--", *args]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    dsn = os.environ.get("BLUEGREEN_TEST_PG_DSN")
    if dsn:
        yield _server_from_dsn(dsn)
        return
    initdb = _initdb()
    if initdb is None:
        pytest.skip(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) and "
            "BLUEGREEN_TEST_PG_DSN is not set; PostgreSQL is covered by the lab (db1)"
        )
    if shutil.which("psql") is None or shutil.which("pg_dump") is None:
        pytest.skip("psql/pg_dump are not installed (postgresql-client)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as nobody")
    bindir = os.path.dirname(initdb)
    # Short path: the socket name must fit in 107 bytes.
    base = tempfile.mkdtemp(prefix="bg-pg-", dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(base, CLUSTER_USER)
    data = os.path.join(base, "data")
    created = _as_cluster_user(
        [
            initdb,
            "-D",
            data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        base,
    )
    if created.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"initdb failed, so no throwaway PostgreSQL: {created.stderr.strip()}")
    options = f"-k {base} -c listen_addresses='' -p {PORT} -c fsync=off"
    started = _as_cluster_user(
        [f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{base}/log", "-w", "start"], base
    )
    if started.returncode != 0:
        log = Path(base, "log").read_text() if Path(base, "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"the throwaway PostgreSQL did not start: {started.stderr.strip()} {log}")
    try:
        yield Server(host=base, port=PORT, user="postgres", password=None)
    finally:
        _as_cluster_user([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database(server: Server) -> Iterator[str]:
    """A fresh database `app_<random>` with users (3 rows) and orders (500 rows)."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    server.psql("postgres", f"CREATE DATABASE {name}")
    server.psql(
        name,
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);"
        "CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, item text);"
        "INSERT INTO users (name) SELECT 'u' || n FROM generate_series(1, 3) n;"
        "INSERT INTO orders (user_id, item) SELECT 1 + n % 3, md5(n::text) "
        "FROM generate_series(1, 500) n;",
    )
    try:
        yield name
    finally:
        for leftover in server.databases(name):
            server.psql("postgres", f'DROP DATABASE "{leftover}" WITH (FORCE)')


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def snapshot_args(server: Server, dest: Path, database: str, **overrides: Any) -> dict[str, Any]:
    return {
        "engine": "postgresql",
        "database": database,
        "dest": str(dest),
        **server.login(),
        **overrides,
    }


def restore_args(server: Server, dest: Path, snapshot_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "state": "restored",
        "dest": str(dest),
        "snapshot_id": snapshot_id,
        **server.login(),
        **overrides,
    }


def count(server: Server, database: str, table: str) -> int:
    return int(server.psql(database, f"SELECT count(*) FROM {table}"))


def has_table(server: Server, database: str, table: str) -> bool:
    return server.psql(database, f"SELECT to_regclass('{table}') IS NOT NULL") == "t"


class TestDump:
    def test_custom_format_snapshot_is_read_back_completely(
        self, run_module, server: Server, dest: Path, database: str
    ) -> None:
        result = run_module(
            backup_snapshot.main, snapshot_args(server, dest, database, revision="0042")
        )

        assert result["failed"] is False, result["msg"]
        assert result["verified"] is True
        manifest = result["manifest"]
        dump = Path(result["path"]) / "database.dump"
        assert manifest["database"] == database
        assert manifest["revision"] == "0042"
        assert manifest["files"] == [
            {
                "path": "database.dump",
                "size": dump.stat().st_size,
                "sha256": hashlib.sha256(dump.read_bytes()).hexdigest(),
            }
        ]
        assert manifest["tool_versions"]["pg_dump"].startswith("pg_dump (PostgreSQL)")
        assert manifest["source"]["properties"]["owner"] == server.user
        assert manifest["source"]["properties"]["encoding"] == "UTF8"
        assert any("pg_restore --list read the table of contents" in c for c in result["checks"])
        assert any("pg_restore -f /dev/null read and decoded" in c for c in result["checks"])
        listing = subprocess.run(
            ["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True
        ).stdout
        assert "TABLE DATA public orders" in listing

    @pytest.mark.parametrize(
        ("bookkeeping", "expected"),
        [
            (
                "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                "INSERT INTO alembic_version VALUES ('0002');",
                "0002",
            ),
            (
                "CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text);"
                "INSERT INTO django_migrations (app, name) VALUES ('notes', '0001_initial'), "
                "('auth', '0001_initial'), ('notes', '0002_note_author');",
                "auth.0001_initial,notes.0002_note_author",
            ),
            ("", None),
        ],
        ids=["alembic", "django", "none"],
    )
    def test_revision_is_read_from_the_database_when_not_given(
        self, run_module, server: Server, dest: Path, database: str, bookkeeping: str, expected
    ) -> None:
        if bookkeeping:
            server.psql(database, bookkeeping)

        result = run_module(backup_snapshot.main, snapshot_args(server, dest, database))

        assert result["failed"] is False, result["msg"]
        assert result["manifest"]["revision"] == expected

    def test_directory_format_with_parallel_jobs(
        self, run_module, server: Server, dest: Path, database: str
    ) -> None:
        result = run_module(
            backup_snapshot.main,
            snapshot_args(server, dest, database, pg_format="directory", jobs=2),
        )

        assert result["verified"] is True
        paths = [entry["path"] for entry in result["manifest"]["files"]]
        assert "database.dir/toc.dat" in paths
        assert len(paths) >= 3

    def test_check_mode_estimates_and_writes_nothing(
        self, run_module, server: Server, dest: Path, database: str
    ) -> None:
        result = run_module(
            backup_snapshot.main, snapshot_args(server, dest, database), check_mode=True
        )

        assert result["changed"] is True
        assert result["estimated_size_bytes"] > 0
        assert not dest.exists()

    def test_missing_database_fails_before_anything_is_kept(
        self, run_module, server: Server, dest: Path
    ) -> None:
        result = run_module(backup_snapshot.main, snapshot_args(server, dest, "no_such_db"))

        assert result["failed"] is True
        assert 'database "no_such_db" does not exist' in result["msg"]
        assert os.listdir(dest) == []


class TestVerification:
    @pytest.fixture
    def dump(self, run_module, server: Server, dest: Path, database: str) -> Path:
        run_module(backup_snapshot.main, snapshot_args(server, dest, database, snapshot_id="p1"))
        return dest / "p1" / "database.dump"

    def verify(self, run_module, dest: Path) -> dict[str, Any]:
        return run_module(
            backup_snapshot.main, {"state": "verified", "dest": str(dest), "snapshot_id": "p1"}
        )

    def test_truncated_dump_fails_naming_the_file(self, run_module, dest: Path, dump: Path) -> None:
        size = dump.stat().st_size
        with open(dump, "r+b") as handle:
            handle.truncate(size - 200)

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert (
            f"database.dump is {size - 200} bytes but the manifest records {size}"
            in (result["msg"])
        )

    def test_truncated_dump_with_a_matching_manifest_fails_the_full_read(
        self, run_module, dest: Path, dump: Path
    ) -> None:
        with open(dump, "r+b") as handle:
            handle.truncate(dump.stat().st_size - 200)
        manifest_path = dump.parent / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        content = dump.read_bytes()
        manifest["files"][0].update(size=len(content), sha256=hashlib.sha256(content).hexdigest())
        manifest["size_bytes"] = len(content)
        manifest_path.write_text(json.dumps(manifest))

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert "database.dump: pg_restore" in result["msg"]
        assert "pg_restore: error" in result["msg"]


class TestRestore:
    @pytest.fixture
    def snapshot_id(self, run_module, server: Server, dest: Path, database: str) -> str:
        run_module(backup_snapshot.main, snapshot_args(server, dest, database, snapshot_id="p1"))
        server.psql(
            database,
            "CREATE TABLE added_later (id int); DELETE FROM orders; "
            "INSERT INTO users (name) VALUES ('after the snapshot')",
        )
        return "p1"

    def test_swap_puts_a_fresh_restore_in_place_and_keeps_the_old_database(
        self, run_module, server: Server, dest: Path, database: str, snapshot_id: str
    ) -> None:
        env = dict(os.environ, PGPASSWORD=server.password or "")
        session = subprocess.Popen(
            [*server.client_args("-d", database), "-c", "SELECT pg_sleep(120)"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 10
            while (
                server.psql(
                    "postgres",
                    f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'",
                )
                == "0"
            ):
                assert time.monotonic() < deadline, "the application session did not connect"
                time.sleep(0.05)

            result = run_module(
                backup_snapshot.main, restore_args(server, dest, snapshot_id, swap=True, jobs=2)
            )
            _, session_error = session.communicate(timeout=30)
        finally:
            if session.poll() is None:
                session.kill()

        assert result["failed"] is False, result["msg"]
        before = f"{database}_before_p1"
        assert result["restore"] == {
            "engine": "postgresql",
            "target": f"{database}_restore_p1",
            "live": database,
            "swap": True,
            "kept_as": before,
            "terminated_sessions": 1,
        }
        assert "terminat" in session_error
        assert not has_table(server, database, "added_later")
        assert count(server, database, "orders") == 500
        assert count(server, database, "users") == 3
        assert has_table(server, before, "added_later")
        assert count(server, before, "users") == 4
        assert server.databases(database) == {database, before}
        assert (
            server.psql(
                "postgres", f"SELECT datallowconn FROM pg_database WHERE datname = '{before}'"
            )
            == "t"
        )

    def test_without_swap_the_live_database_is_untouched(
        self, run_module, server: Server, dest: Path, database: str, snapshot_id: str
    ) -> None:
        result = run_module(backup_snapshot.main, restore_args(server, dest, snapshot_id))

        target = f"{database}_restore_p1"
        assert result["restore"]["kept_as"] is None
        assert count(server, target, "orders") == 500
        assert not has_table(server, target, "added_later")
        assert has_table(server, database, "added_later")

    def test_second_swap_of_the_same_snapshot_is_refused(
        self, run_module, server: Server, dest: Path, database: str, snapshot_id: str
    ) -> None:
        run_module(backup_snapshot.main, restore_args(server, dest, snapshot_id, swap=True))

        result = run_module(
            backup_snapshot.main, restore_args(server, dest, snapshot_id, swap=True)
        )

        assert result["failed"] is True
        assert "was already swapped in once" in result["msg"]

    def test_check_mode_reports_and_creates_nothing(
        self, run_module, server: Server, dest: Path, database: str, snapshot_id: str
    ) -> None:
        result = run_module(
            backup_snapshot.main,
            restore_args(server, dest, snapshot_id, swap=True),
            check_mode=True,
        )

        assert result["restore"]["kept_as"] == f"{database}_before_p1"
        assert server.databases(database) == {database}
        assert has_table(server, database, "added_later")

    def test_failed_restore_drops_the_fresh_database_and_leaves_live_alone(
        self, run_module, server: Server, dest: Path, database: str
    ) -> None:
        role = f"reader_{uuid.uuid4().hex[:8]}"
        server.psql(database, f"CREATE ROLE {role}; GRANT SELECT ON users TO {role}")
        run_module(backup_snapshot.main, snapshot_args(server, dest, database, snapshot_id="p2"))
        server.psql(database, f"REVOKE SELECT ON users FROM {role}; DROP ROLE {role}")

        result = run_module(backup_snapshot.main, restore_args(server, dest, "p2", swap=True))

        assert result["failed"] is True
        assert f'role "{role}" does not exist' in result["msg"]
        assert f"the partly restored database {database}_restore_p2 was dropped" in result["msg"]
        assert server.databases(database) == {database}
        assert count(server, database, "orders") == 500


class TestEncrypted:
    """pg_dump through a pipe into age: only ciphertext on disk, verified and restored by
    decrypting through pipes."""

    def test_encrypted_dump_verifies_fails_when_damaged_and_restores(
        self, run_module, server: Server, dest: Path, database: str, keys: dict[str, str]
    ) -> None:
        secret = {"encrypt_to": [keys["team_recipient"]], "identity": keys["team_identity"]}
        taken = run_module(
            backup_snapshot.main, snapshot_args(server, dest, database, snapshot_id="e1", **secret)
        )
        assert taken["failed"] is False, taken["msg"]
        server.psql(database, "DELETE FROM orders")
        restored = run_module(
            backup_snapshot.main,
            restore_args(server, dest, "e1", swap=True, jobs=2, identity=keys["team_identity"]),
        )
        cipher = dest / "e1" / "database.dump.age"
        flip_byte(cipher, cipher.stat().st_size // 2)
        rewrite_manifest_for(dest / "e1", "database.dump.age")
        damaged = run_module(
            backup_snapshot.main,
            {"state": "verified", "dest": str(dest), "snapshot_id": "e1", **secret},
        )

        assert taken["failed"] is False, taken["msg"]
        assert sorted(p.name for p in (dest / "e1").iterdir()) == [
            "database.dump.age",
            "manifest.json",
        ]
        assert b"PGDMP" not in cipher.read_bytes()
        checks = "\n".join(taken["checks"])
        assert "age decrypted and authenticated every byte" in checks
        assert "pg_restore -f /dev/null read and decoded the whole archive" in checks
        assert restored["failed"] is False, restored["msg"]
        assert count(server, database, "orders") == 500
        assert damaged["failed"] is True and "age --decrypt" in damaged["msg"]
