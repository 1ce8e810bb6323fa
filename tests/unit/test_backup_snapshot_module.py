"""backup_snapshot end to end in-process, with real SQLite files, tar archives and directories.

Each test asserts what a database engineer would check by hand: which rows the snapshot
holds, which file is live after a restore, what is left in the backup directory after a
failure.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backup_snapshot
import pytest

PAD = "x" * 200


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def make_db(path: Path, users: int = 3, orders: int = 2000, *, wal: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, pad TEXT)")
        db.execute("CREATE INDEX orders_item ON orders (item)")
        db.execute("BEGIN")
        db.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{n}",) for n in range(users)])
        db.executemany(
            "INSERT INTO orders (item, pad) VALUES (?, ?)", [(f"i{n}", PAD) for n in range(orders)]
        )
        db.execute("COMMIT")
    return path


def rows(path: Path, table: str) -> int:
    with connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def tables(path: Path) -> list[str]:
    with connect(path) as db:
        return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def args(dest: Path, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"dest": str(dest)}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sqlite_args(dest: Path, live: Path, **overrides: Any) -> dict[str, Any]:
    return args(dest, engine="sqlite", sqlite_path=str(live), **overrides)


def entries(dest: Path) -> list[str]:
    return sorted(os.listdir(dest)) if dest.exists() else []


def rewrite_manifest_for(snapshot: Path, relative: str) -> None:
    """Make the manifest agree with a file that was changed, as an attacker or a bug might."""
    manifest_path = snapshot / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    content = (snapshot / relative).read_bytes()
    for entry in manifest["files"]:
        if entry["path"] == relative:
            entry["size"] = len(content)
            entry["sha256"] = hashlib.sha256(content).hexdigest()
    manifest["size_bytes"] = sum(entry["size"] for entry in manifest["files"])
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "backups" / "sampleapp"


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_db(tmp_path / "srv" / "db.sqlite3")


class TestSqliteSnapshot:
    def test_snapshot_while_another_thread_writes_in_wal_mode(
        self, run_module, dest: Path, live: Path
    ) -> None:
        stop = threading.Event()
        written = [0]

        def keep_writing() -> None:
            with connect(live) as db:
                while not stop.is_set():
                    db.execute("INSERT INTO orders (item, pad) VALUES ('live', ?)", (PAD,))
                    written[0] += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            while written[0] < 100:
                time.sleep(0.01)
            orders_before = rows(live, "orders")
            written_before = written[0]
            result = run_module(
                backup_snapshot.main,
                sqlite_args(dest, live, release_id="r42", revision="3f2a9c"),
            )
            written_during = written[0] - written_before
        finally:
            stop.set()
            writer.join()

        assert result["failed"] is False, result["msg"]
        assert result["changed"] is True
        assert result["verified"] is True
        assert written_during > 0, "the writer was blocked while the snapshot was taken"
        snapshot = Path(result["path"])
        manifest = result["manifest"]
        copy = snapshot / "database.sqlite3"
        assert entries(dest) == [result["snapshot_id"]]
        assert sorted(os.listdir(snapshot)) == ["database.sqlite3", "manifest.json"]
        assert orders_before <= manifest["tables"]["orders"] <= rows(live, "orders")
        assert manifest["tables"]["users"] == 3
        with contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert (
                db.execute("SELECT count(*) FROM orders").fetchone()[0]
                == (manifest["tables"]["orders"])
            )
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert manifest["complete"] is True
        assert manifest["release_id"] == "r42"
        assert manifest["revision"] == "3f2a9c"
        assert manifest["source"]["journal_mode"] == "wal"
        assert manifest["tool_versions"]["sqlite"] == sqlite3.sqlite_version
        assert manifest["files"] == [
            {
                "path": "database.sqlite3",
                "size": copy.stat().st_size,
                "sha256": hashlib.sha256(copy.read_bytes()).hexdigest(),
            }
        ]
        assert result["size_bytes"] == copy.stat().st_size
        assert json.loads((snapshot / "manifest.json").read_text()) == manifest
        assert any("PRAGMA integrity_check: ok" in check for check in result["checks"])
        assert any("row counts of 2 table(s) match" in check for check in result["checks"])

    def test_snapshot_files_are_private(self, run_module, dest: Path, live: Path) -> None:
        result = run_module(backup_snapshot.main, sqlite_args(dest, live))

        snapshot = Path(result["path"])
        assert stat.S_IMODE(dest.stat().st_mode) == 0o700
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o700
        for name in ("database.sqlite3", "manifest.json"):
            assert stat.S_IMODE((snapshot / name).stat().st_mode) == 0o600

    def test_rollback_journal_database_is_snapshotted_too(
        self, run_module, dest: Path, tmp_path: Path
    ) -> None:
        live = make_db(tmp_path / "plain.sqlite3", wal=False)

        result = run_module(backup_snapshot.main, sqlite_args(dest, live))

        assert result["verified"] is True
        assert result["manifest"]["source"]["journal_mode"] == "delete"

    def test_explicit_id_makes_the_task_idempotent(
        self, run_module, dest: Path, live: Path
    ) -> None:
        first = run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))
        with connect(live) as db:
            db.execute("DELETE FROM users")

        second = run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))

        assert (first["changed"], second["changed"]) == (True, False)
        assert second["verified"] is True
        assert second["manifest"] == first["manifest"]
        assert second["manifest"]["tables"]["users"] == 3

    def test_generated_ids_differ(self, run_module, dest: Path, live: Path) -> None:
        first = run_module(backup_snapshot.main, sqlite_args(dest, live))
        second = run_module(backup_snapshot.main, sqlite_args(dest, live))

        assert first["snapshot_id"] != second["snapshot_id"]
        assert entries(dest) == sorted([first["snapshot_id"], second["snapshot_id"]])

    def test_check_mode_writes_nothing_and_estimates_the_size(
        self, run_module, dest: Path, live: Path
    ) -> None:
        with connect(live) as app:
            app.execute("PRAGMA wal_autocheckpoint=0")
            app.execute("INSERT INTO users (name) VALUES ('not checkpointed yet')")
            expected = live.stat().st_size + Path(f"{live}-wal").stat().st_size

            result = run_module(backup_snapshot.main, sqlite_args(dest, live), check_mode=True)

        assert result["changed"] is True
        assert result["manifest"] is None
        assert result["estimated_size_bytes"] == expected
        assert result["msg"].startswith(f"would take snapshot {result['snapshot_id']}")
        assert not dest.exists()


class TestSqliteVerification:
    @pytest.fixture
    def snapshot(self, run_module, dest: Path, live: Path) -> Path:
        return Path(
            run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))["path"]
        )

    def verify(self, run_module, dest: Path) -> dict[str, Any]:
        return run_module(backup_snapshot.main, args(dest, state="verified", snapshot_id="r1"))

    def test_intact_snapshot_verifies_without_changes(
        self, run_module, dest: Path, snapshot: Path
    ) -> None:
        result = self.verify(run_module, dest)

        assert result["failed"] is False
        assert result["changed"] is False
        assert result["verified"] is True
        assert result["checks"][0].startswith("sha256 and size of 1 file(s) match the manifest")

    def test_truncated_copy_fails_naming_the_file_and_expected_size(
        self, run_module, dest: Path, snapshot: Path
    ) -> None:
        copy = snapshot / "database.sqlite3"
        size = copy.stat().st_size
        with open(copy, "r+b") as handle:
            handle.truncate(size // 2)

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert result["verified"] is False
        assert (
            f"database.sqlite3 is {size // 2} bytes but the manifest records {size} "
            "(the file is truncated)"
        ) in result["msg"]
        assert "Do not restore from this snapshot" in result["msg"]

    def test_byte_flipped_copy_fails_naming_the_checksums(
        self, run_module, dest: Path, snapshot: Path
    ) -> None:
        copy = snapshot / "database.sqlite3"
        expected = hashlib.sha256(copy.read_bytes()).hexdigest()
        with open(copy, "r+b") as handle:
            handle.seek(copy.stat().st_size // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0xFF]))

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert "database.sqlite3 has sha256" in result["msg"]
        assert f"but the manifest records {expected}" in result["msg"]

    def test_corrupt_copy_fails_the_integrity_check_even_with_matching_checksums(
        self, run_module, dest: Path, snapshot: Path
    ) -> None:
        copy = snapshot / "database.sqlite3"
        with contextlib.closing(sqlite3.connect(copy)) as db:
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
        with open(copy, "r+b") as handle:
            handle.seek(page_size * (pages // 2) + 8)
            handle.write(b"\xff" * 64)
        rewrite_manifest_for(snapshot, "database.sqlite3")

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert "database.sqlite3: " in result["msg"]
        assert "integrity_check" in result["msg"] or "cannot read it" in result["msg"]

    def test_missing_rows_fail_the_row_counts_even_with_matching_checksums(
        self, run_module, dest: Path, snapshot: Path
    ) -> None:
        copy = snapshot / "database.sqlite3"
        with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as db:
            db.execute("DELETE FROM users WHERE id = 1")
        rewrite_manifest_for(snapshot, "database.sqlite3")

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert "table users has 2 rows but the manifest records 3" in result["msg"]

    def test_damaged_manifest_is_reported(self, run_module, dest: Path, snapshot: Path) -> None:
        (snapshot / "manifest.json").write_text("{")

        result = self.verify(run_module, dest)

        assert result["failed"] is True
        assert "manifest.json is not valid JSON" in result["msg"]

    def test_unknown_snapshot(self, run_module, dest: Path, snapshot: Path) -> None:
        result = run_module(backup_snapshot.main, args(dest, state="verified", snapshot_id="r9"))

        assert result["failed"] is True
        assert result["msg"] == (
            f"there is no snapshot r9 in {dest}: list the snapshots with state=info and pick one"
        )

    def test_engine_mismatch(self, run_module, dest: Path, snapshot: Path) -> None:
        result = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", engine="postgresql"),
        )

        assert result["failed"] is True
        assert "is a sqlite snapshot, not postgresql" in result["msg"]


class TestSqliteRestore:
    @pytest.fixture
    def snapshot_id(self, run_module, dest: Path, live: Path) -> str:
        os.chmod(live, 0o640)
        if os.geteuid() == 0:
            os.chown(live, 65534, 65534)
        run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))
        with connect(live) as db:
            db.execute("CREATE TABLE added_later (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM users WHERE id > 1")
        return "r1"

    def restore(self, run_module, dest: Path, **overrides: Any) -> dict[str, Any]:
        return run_module(
            backup_snapshot.main, args(dest, state="restored", snapshot_id="r1", **overrides)
        )

    def test_swap_replaces_the_live_database_and_keeps_the_old_one(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        owner = live.stat()

        result = self.restore(run_module, dest, swap=True)

        assert result["failed"] is False, result["msg"]
        assert result["changed"] is True
        before = Path(f"{live}.before-r1")
        assert result["restore"] == {
            "engine": "sqlite",
            "target": f"{live}.restore-r1",
            "live": str(live),
            "swap": True,
            "kept_as": str(before),
        }
        assert "added_later" not in tables(live)
        assert rows(live, "users") == 3
        assert "added_later" in tables(before)
        assert rows(before, "users") == 1
        assert sorted(os.listdir(live.parent)) == ["db.sqlite3", "db.sqlite3.before-r1"]
        restored = live.stat()
        assert (restored.st_uid, restored.st_gid) == (owner.st_uid, owner.st_gid)
        assert stat.S_IMODE(restored.st_mode) == 0o640
        with connect(live) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert any("PRAGMA integrity_check: ok" in c for c in result["checks"])

    def test_without_swap_the_snapshot_goes_to_a_new_file_next_to_the_live_one(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        result = self.restore(run_module, dest)

        target = Path(f"{live}.restore-r1")
        assert result["restore"]["kept_as"] is None
        assert rows(target, "users") == 3
        assert rows(live, "users") == 1
        assert "added_later" in tables(live)

    def test_restore_refuses_while_the_database_is_open(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        with connect(live) as db:
            db.execute("SELECT 1 FROM users").fetchall()
            result = self.restore(run_module, dest, swap=True)

        assert result["failed"] is True
        assert f"is open in process(es) {os.getpid()} " in result["msg"]
        assert "Stop the service" in result["msg"]
        assert "added_later" in tables(live)
        assert not Path(f"{live}.restore-r1").exists()
        assert not Path(f"{live}.before-r1").exists()

    def test_second_swap_of_the_same_snapshot_is_refused(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        self.restore(run_module, dest, swap=True)
        with connect(live) as db:
            db.execute("INSERT INTO users (name) VALUES ('after restore')")

        result = self.restore(run_module, dest, swap=True)

        assert result["failed"] is True
        assert "was already swapped in once" in result["msg"]
        assert rows(live, "users") == 4

    def test_check_mode_reports_what_would_be_replaced(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        before = sorted(os.listdir(live.parent))

        result = run_module(
            backup_snapshot.main,
            args(dest, state="restored", snapshot_id="r1", swap=True),
            check_mode=True,
        )

        assert result["changed"] is True
        assert result["restore"]["kept_as"] == f"{live}.before-r1"
        assert result["msg"].startswith("would restore snapshot r1")
        assert sorted(os.listdir(live.parent)) == before
        assert "added_later" in tables(live)

    def test_restore_of_a_corrupt_snapshot_is_refused(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        copy = dest / "r1" / "database.sqlite3"
        with open(copy, "r+b") as handle:
            handle.truncate(1024)

        result = self.restore(run_module, dest, swap=True)

        assert result["failed"] is True
        assert "failed verification" in result["msg"]
        assert "added_later" in tables(live)
        assert sorted(os.listdir(live.parent)) == ["db.sqlite3"]

    def test_disk_full_while_restoring_leaves_the_live_database_alone(
        self,
        run_module,
        dest: Path,
        live: Path,
        snapshot_id: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def full(_: Any, manifest: dict, file: str, target: str, *__: Any) -> list[str]:
            Path(target).write_bytes(b"half a database")
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(backup_snapshot, "write_sqlite_restore", full)

        result = self.restore(run_module, dest, swap=True)

        assert result["failed"] is True
        assert f"the file system of {live.parent} is full" in result["msg"]
        assert f"the live database {live} was not changed" in result["msg"]
        assert sorted(os.listdir(live.parent)) == ["db.sqlite3"]
        assert "added_later" in tables(live)

    def test_restore_when_the_live_file_is_gone(
        self, run_module, dest: Path, live: Path, snapshot_id: str
    ) -> None:
        live.unlink()

        result = self.restore(run_module, dest, swap=True)

        assert result["restore"]["kept_as"] is None
        assert rows(live, "users") == 3
        assert stat.S_IMODE(live.stat().st_mode) == 0o640


class TestFailures:
    def test_disk_full_during_the_copy_leaves_nothing(
        self, run_module, dest: Path, live: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def full(source: sqlite3.Connection, target: str) -> None:
            Path(target).write_bytes(b"partial page")
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(backup_snapshot, "sqlite_copy", full)

        result = run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))

        assert result["failed"] is True
        assert result["verified"] is False
        assert result["msg"].startswith(f"snapshot r1 of sqlite {live} was not taken: ")
        assert "the file system of dest is full" in result["msg"]
        assert "The partial snapshot was removed; nothing was kept." in result["msg"]
        assert entries(dest) == []

    def test_no_space_for_the_final_manifest_leaves_nothing(
        self, run_module, dest: Path, live: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_write = backup_snapshot.write_manifest

        def write(directory: str, manifest: dict[str, Any]) -> None:
            if manifest["complete"]:
                raise OSError(errno.ENOSPC, "No space left on device", f"{directory}/x")
            real_write(directory, manifest)

        monkeypatch.setattr(backup_snapshot, "write_manifest", write)

        result = run_module(backup_snapshot.main, sqlite_args(dest, live))

        assert result["failed"] is True
        assert "No space left on device" in result["msg"]
        assert "point dest at a larger file system" in result["msg"]
        assert entries(dest) == []

    def test_copy_damaged_on_its_way_to_disk_is_caught_before_it_is_kept(
        self, run_module, dest: Path, live: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_copy = backup_snapshot.sqlite_copy

        def damaging_copy(source: sqlite3.Connection, target: str) -> None:
            real_copy(source, target)
            size = os.path.getsize(target)
            with open(target, "r+b") as handle:
                handle.seek(size // 2)
                handle.write(b"\xff" * 4096)

        monkeypatch.setattr(backup_snapshot, "sqlite_copy", damaging_copy)

        result = run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))

        assert result["failed"] is True
        assert "failed verification: database.sqlite3: " in result["msg"]
        assert "The partial snapshot was removed; nothing was kept." in result["msg"]
        assert entries(dest) == []

    def test_missing_database_file(self, run_module, dest: Path, tmp_path: Path) -> None:
        result = run_module(backup_snapshot.main, sqlite_args(dest, tmp_path / "nope.sqlite3"))

        assert result["failed"] is True
        assert "does not exist or is not a file" in result["msg"]
        assert entries(dest) == []

    def test_failing_pg_dump_leaves_nothing_and_reports_its_stderr(
        self, run_module, dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            backup_snapshot, "pg_properties", lambda module, connection, database: {}
        )
        monkeypatch.setattr(
            backup_snapshot, "pg_revision", lambda module, connection, database: "0002"
        )

        result = run_module(
            backup_snapshot.main,
            args(
                dest,
                engine="postgresql",
                database="sampleapp",
                login_host=str(tmp_path),
                login_port=1,
                snapshot_id="r1",
            ),
        )

        assert result["failed"] is True
        assert result["msg"].startswith(
            "snapshot r1 of postgresql database sampleapp was not taken: pg_dump of database "
            "sampleapp failed (exit 1): "
        )
        assert "pg_dump: error" in result["stderr"]
        assert result["cmd"][0].endswith("pg_dump")
        assert entries(dest) == []

    def test_another_run_writing_the_same_id_is_not_disturbed(
        self, run_module, dest: Path, live: Path
    ) -> None:
        (dest / ".r1.partial").mkdir(parents=True)

        result = run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1"))

        assert result["failed"] is True
        assert "another run is writing snapshot r1" in result["msg"]
        assert entries(dest) == [".r1.partial"]


class TestFiles:
    @pytest.fixture
    def tree(self, tmp_path: Path) -> list[Path]:
        config = tmp_path / "etc" / "sampleapp"
        config.mkdir(parents=True)
        (config / "app.ini").write_text("[app]\nport = 8001\n")
        (config / "secret.env").write_text("TOKEN=1\n")
        media = tmp_path / "srv" / "media"
        media.mkdir(parents=True)
        (media / "logo.png").write_bytes(os.urandom(4096))
        return [config, media / "logo.png"]

    def test_archive_verify_and_restore_into_a_directory(
        self, run_module, dest: Path, tree: list[Path], tmp_path: Path
    ) -> None:
        paths = [str(path) for path in tree]
        taken = run_module(
            backup_snapshot.main, args(dest, engine="files", paths=paths, snapshot_id="f1")
        )
        target = tmp_path / "restored"

        restored = run_module(
            backup_snapshot.main,
            args(dest, state="restored", snapshot_id="f1", restore_target=str(target)),
        )

        assert taken["verified"] is True
        assert taken["manifest"]["members"] == 4
        assert taken["manifest"]["source"] == {"paths": paths}
        assert any("tar --list read the whole archive" in c for c in taken["checks"])
        assert restored["restore"]["target"] == str(target)
        for path in [tree[0] / "app.ini", tree[0] / "secret.env", tree[1]]:
            assert (target / str(path).lstrip("/")).read_bytes() == path.read_bytes()

    def test_truncated_archive_fails_verification(
        self, run_module, dest: Path, tree: list[Path]
    ) -> None:
        run_module(
            backup_snapshot.main,
            args(dest, engine="files", paths=[str(p) for p in tree], snapshot_id="f1"),
        )
        archive = dest / "f1" / "files.tar.gz"
        size = archive.stat().st_size
        with open(archive, "r+b") as handle:
            handle.truncate(size - 100)

        result = run_module(backup_snapshot.main, args(dest, state="verified", snapshot_id="f1"))

        assert result["failed"] is True
        assert (
            f"files.tar.gz is {size - 100} bytes but the manifest records {size}" in (result["msg"])
        )

    def test_check_mode_estimates_the_uncompressed_size(
        self, run_module, dest: Path, tree: list[Path]
    ) -> None:
        result = run_module(
            backup_snapshot.main,
            args(dest, engine="files", paths=[str(p) for p in tree]),
            check_mode=True,
        )

        assert result["estimated_size_bytes"] == len("[app]\nport = 8001\n") + 8 + 4096
        assert not dest.exists()

    def test_missing_path_fails_before_anything_is_kept(
        self, run_module, dest: Path, tmp_path: Path
    ) -> None:
        result = run_module(
            backup_snapshot.main, args(dest, engine="files", paths=[str(tmp_path / "nope")])
        )

        assert result["failed"] is True
        assert "do not exist" in result["msg"]
        assert entries(dest) == []

    def test_restore_refuses_swap_and_a_non_empty_target(
        self, run_module, dest: Path, tree: list[Path], tmp_path: Path
    ) -> None:
        run_module(
            backup_snapshot.main,
            args(dest, engine="files", paths=[str(p) for p in tree], snapshot_id="f1"),
        )
        restore = args(dest, state="restored", snapshot_id="f1", restore_target=str(tmp_path))

        swap = run_module(backup_snapshot.main, dict(restore, swap=True))
        busy = run_module(backup_snapshot.main, restore)

        assert "swap is not supported for files snapshots" in swap["msg"]
        assert "is not an empty directory" in busy["msg"]


class TestRetentionAndListing:
    @pytest.fixture
    def four(self, run_module, dest: Path, live: Path) -> list[str]:
        ids = ["s1", "s2", "s3", "s4"]
        for snapshot_id in ids:
            run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id=snapshot_id))
        return ids

    def partial(self, dest: Path, name: str, age: float) -> Path:
        path = dest / name
        path.mkdir()
        (path / "database.sqlite3").write_bytes(b"half")
        moment = time.time() - age
        for item in (path / "database.sqlite3", path):
            os.utime(item, (moment, moment))
        return path

    def test_info_lists_newest_first_and_names_what_it_ignores(
        self, run_module, dest: Path, four: list[str]
    ) -> None:
        (dest / "junk").mkdir()
        self.partial(dest, ".s5.partial", 5)

        result = run_module(backup_snapshot.main, args(dest, state="info"))

        assert result["changed"] is False
        assert [s["snapshot_id"] for s in result["snapshots"]] == ["s4", "s3", "s2", "s1"]
        assert result["snapshots"][0]["engine"] == "sqlite"
        reasons = {Path(entry["path"]).name: entry["reason"] for entry in result["ignored"]}
        assert reasons[".s5.partial"].startswith("partial snapshot")
        assert "has no manifest.json" in reasons["junk"]

    def test_prune_keeps_newest_and_protected_and_removes_stale_partials(
        self, run_module, dest: Path, four: list[str]
    ) -> None:
        self.partial(dest, ".dead.partial", 2 * 3600)
        self.partial(dest, ".busy.partial", 60)

        result = run_module(
            backup_snapshot.main, args(dest, state="pruned", keep=2, protect=["s1"])
        )

        assert result["changed"] is True
        assert result["deleted"] == ["s2"]
        assert result["kept"] == ["s4", "s3", "s1"]
        assert result["deleted_partials"] == [".dead.partial"]
        assert entries(dest) == [".busy.partial", "s1", "s3", "s4"]

    def test_prune_in_check_mode_lists_and_keeps(
        self, run_module, dest: Path, four: list[str]
    ) -> None:
        result = run_module(
            backup_snapshot.main, args(dest, state="pruned", keep=1), check_mode=True
        )

        assert result["changed"] is True
        assert result["deleted"] == ["s3", "s2", "s1"]
        assert entries(dest) == four

    def test_prune_with_nothing_to_do(self, run_module, dest: Path, four: list[str]) -> None:
        result = run_module(backup_snapshot.main, args(dest, state="pruned", keep=4))

        assert result["changed"] is False
        assert result["deleted"] == []

    def test_absent_deletes_one_and_is_idempotent(
        self, run_module, dest: Path, four: list[str]
    ) -> None:
        first = run_module(backup_snapshot.main, args(dest, state="absent", snapshot_id="s2"))
        second = run_module(backup_snapshot.main, args(dest, state="absent", snapshot_id="s2"))

        assert (first["changed"], first["deleted"]) == (True, ["s2"])
        assert (second["changed"], second["deleted"]) == (False, [])
        assert entries(dest) == ["s1", "s3", "s4"]

    def test_absent_refuses_a_protected_snapshot(
        self, run_module, dest: Path, four: list[str]
    ) -> None:
        result = run_module(
            backup_snapshot.main, args(dest, state="absent", snapshot_id="s2", protect=["s2"])
        )

        assert result["failed"] is True
        assert "is in protect" in result["msg"]
        assert "s2" in entries(dest)

    def test_info_on_a_missing_dest(self, run_module, tmp_path: Path) -> None:
        result = run_module(backup_snapshot.main, args(tmp_path / "none", state="info"))

        assert (result["snapshots"], result["ignored"]) == ([], [])
