"""backup_snapshot's rules, on values: ids, requests, manifests, verification, retention, naming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from ansible.module_utils.backup_snapshot import (
    PG_IDENTIFIER_MAX_BYTES,
    REVISION_SQL,
    FileEntry,
    FileState,
    RestorePlan,
    SnapshotError,
    SnapshotSummary,
    build_manifest,
    build_request,
    checksum_problems,
    create_database_sql,
    database_properties,
    generate_snapshot_id,
    integrity_problems,
    is_partial_dir_name,
    manifest_problems,
    partial_dir_name,
    pg_before_name,
    pg_restore_plan,
    pg_restore_target,
    retention_plan,
    revision_query,
    row_count_problems,
    snapshot_checksum,
    sqlite_restore_plan,
    stale_partials,
    summarise,
    swap_sql,
    tar_members,
    toc_entry_count,
    unexpected_files,
    validate_manifest,
    validate_snapshot_id,
)
from ansible.module_utils.postgresql_access import PgConnection

SHA_A = "a" * 64
SHA_B = "b" * 64


def manifest(**overrides: Any) -> dict[str, Any]:
    base = build_manifest(
        snapshot_id="20261122T020304Z-1a2b3c",
        engine="sqlite",
        complete=True,
        started="2026-11-22T02:03:04.000001Z",
        finished="2026-11-22T02:03:05.000001Z",
        duration_s=1.0,
        host="db1",
        release_id="r1",
        revision="3f2a",
        database=None,
        source={"path": "/srv/app/db.sqlite3", "journal_mode": "wal"},
        artifact="database.sqlite3",
        files=[FileEntry("database.sqlite3", 8192, SHA_A)],
        tool_versions={"sqlite": "3.40.1"},
        tables={"users": 3},
    )
    base.update(overrides)
    return base


def summary(snapshot_id: str, started: str) -> SnapshotSummary:
    return SnapshotSummary(
        snapshot_id=snapshot_id,
        path=f"/b/{snapshot_id}",
        engine="sqlite",
        started=started,
        finished=started,
        duration_s=0.1,
        size_bytes=1,
        release_id=None,
        revision=None,
        database=None,
    )


class TestSnapshotIds:
    def test_generated_id_is_utc_time_and_token(self) -> None:
        moment = datetime(2026, 11, 22, 5, 3, 4, tzinfo=timezone(timedelta(hours=3)))
        assert generate_snapshot_id(moment, "1a2b3c") == "20261122T020304Z-1a2b3c"

    def test_generated_ids_sort_in_time_order(self) -> None:
        early = generate_snapshot_id(datetime(2026, 1, 2, tzinfo=UTC), "ffffff")
        late = generate_snapshot_id(datetime(2026, 1, 3, tzinfo=UTC), "000000")
        assert sorted([late, early]) == [early, late]

    def test_generated_id_is_valid(self) -> None:
        moment = datetime(2026, 11, 22, tzinfo=UTC)
        assert validate_snapshot_id(generate_snapshot_id(moment, "abcdef"))

    def test_token_must_be_hex(self) -> None:
        with pytest.raises(ValueError):
            generate_snapshot_id(datetime.now(UTC), "../x")

    @pytest.mark.parametrize("value", ["r-2.0.0", "20261122T020304-ab12", "a", "A_b.c-1"])
    def test_valid_ids(self, value: str) -> None:
        assert validate_snapshot_id(value) == value

    @pytest.mark.parametrize(
        "value", ["", ".hidden", "../etc", "a/b", "-x", "x" * 101, "with space", None, 5]
    )
    def test_ids_that_could_escape_dest_or_hide_are_refused(self, value: object) -> None:
        with pytest.raises(SnapshotError, match="is not valid"):
            validate_snapshot_id(value)

    def test_partial_directory_is_hidden_and_recognised(self) -> None:
        name = partial_dir_name("r1")
        assert name == ".r1.partial"
        assert is_partial_dir_name(name)
        assert not is_partial_dir_name("r1")
        assert not is_partial_dir_name(".partial")


class TestRequest:
    def params(self, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "state": "present",
            "engine": "sqlite",
            "dest": "/var/backups/bluegreen/app",
            "sqlite_path": "/srv/app/db.sqlite3",
            "jobs": 1,
            "protect": [],
        }
        base.update(overrides)
        return base

    def test_sqlite_request(self) -> None:
        request = build_request(self.params())
        assert request.engine == "sqlite"
        assert request.sqlite_path == "/srv/app/db.sqlite3"
        assert request.verify is True
        assert request.swap is False

    def test_password_and_connection_are_kept(self) -> None:
        request = build_request(
            self.params(
                engine="postgresql",
                database="app",
                sqlite_path=None,
                login_user="backup",
                login_host="db1",
                login_port=5433,
                login_password="s3cret",
            )
        )
        assert request.pg == PgConnection("backup", "db1", 5433, "s3cret", "postgres")

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"dest": "backups"}, "dest 'backups' is not an absolute path"),
            ({"engine": None}, "needs engine"),
            ({"engine": "postgresql"}, "needs database"),
            ({"sqlite_path": None}, "needs sqlite_path"),
            ({"sqlite_path": "db.sqlite3"}, "needs sqlite_path"),
            ({"engine": "files", "paths": []}, "needs paths"),
            ({"engine": "files", "paths": ["etc/app"]}, "not an absolute path"),
            ({"jobs": 0}, "jobs must be 1 or more"),
            ({"pg_format": "directory"}, "pg_format applies to engine=postgresql only"),
            ({"state": "verified"}, "needs snapshot_id"),
            ({"state": "pruned"}, "needs keep"),
            ({"state": "pruned", "keep": 0}, "keep must be 1 or more"),
            ({"snapshot_id": "../x"}, "snapshot_id '../x' is not valid"),
            ({"protect": ["ok", "../x"]}, "protect entry '../x' is not valid"),
            ({"login_port": 70000}, "login_port"),
        ],
    )
    def test_invalid_requests_say_what_to_give(self, overrides: dict, message: str) -> None:
        with pytest.raises(SnapshotError, match=message.replace("(", r"\(")):
            build_request(self.params(**overrides))

    def test_non_present_states_do_not_need_a_source(self) -> None:
        request = build_request(
            {"state": "pruned", "dest": "/b", "keep": 3, "protect": ["r1"], "jobs": 1}
        )
        assert (request.keep, request.protect) == (3, ("r1",))

    def test_tar_members_are_relative_to_root_and_unique(self) -> None:
        assert tar_members(["/etc/app/", "/srv//app/media", "/etc/app"]) == [
            "etc/app",
            "srv/app/media",
        ]

    def test_tar_members_refuse_root(self) -> None:
        with pytest.raises(SnapshotError, match="must not contain / itself"):
            tar_members(["/"])


class TestManifest:
    def test_built_manifest_is_valid(self) -> None:
        assert manifest_problems(manifest(), "20261122T020304Z-1a2b3c") == []

    def test_manifest_records_what_a_database_engineer_needs(self) -> None:
        data = manifest()
        assert data["size_bytes"] == 8192
        assert data["revision"] == "3f2a"
        assert data["release_id"] == "r1"
        assert data["files"] == [{"path": "database.sqlite3", "size": 8192, "sha256": SHA_A}]
        assert data["tool_versions"] == {"sqlite": "3.40.1"}
        assert data["complete"] is True

    def test_incomplete_manifest_is_not_a_snapshot(self) -> None:
        data = manifest(complete=False)
        assert manifest_problems(data) == ["complete is not true: the snapshot was never finished"]

    def test_manifest_of_another_directory_is_refused(self) -> None:
        assert manifest_problems(manifest(), "other") == [
            "snapshot_id is '20261122T020304Z-1a2b3c' but the directory is 'other'"
        ]

    @pytest.mark.parametrize(
        ("files", "problem"),
        [
            ([], "files is missing or empty"),
            ([{"path": "../etc/passwd", "size": 1, "sha256": SHA_A}], "not a plain relative path"),
            ([{"path": "/etc/passwd", "size": 1, "sha256": SHA_A}], "not a plain relative path"),
            ([{"path": "a/./b", "size": 1, "sha256": SHA_A}], "not a plain relative path"),
            ([{"path": "manifest.json", "size": 1, "sha256": SHA_A}], "not a plain relative"),
            ([{"path": "database.sqlite3", "size": -1, "sha256": SHA_A}], "is not a byte count"),
            ([{"path": "database.sqlite3", "size": 1, "sha256": "XYZ"}], "not 64 lowercase hex"),
            (["database.sqlite3"], "is not an object"),
        ],
    )
    def test_bad_file_entries_are_named(self, files: list, problem: str) -> None:
        problems = manifest_problems(manifest(files=files))
        assert any(problem in p for p in problems), problems

    def test_size_total_must_add_up(self) -> None:
        problems = manifest_problems(manifest(size_bytes=1))
        assert problems == ["size_bytes 1 is not the sum of the file sizes (8192)"]

    def test_artifact_must_be_recorded(self) -> None:
        problems = manifest_problems(manifest(artifact="other.sqlite3"))
        assert problems == ["artifact 'other.sqlite3' is not among the recorded files"]

    def test_directory_artifact_is_a_prefix_of_its_files(self) -> None:
        data = manifest(
            engine="postgresql",
            database="app",
            artifact="database.dir",
            files=[{"path": "database.dir/toc.dat", "size": 8192, "sha256": SHA_A}],
        )
        del data["tables"]
        assert manifest_problems(data) == []

    def test_engine_specific_fields_are_required(self) -> None:
        sqlite = manifest()
        del sqlite["tables"]
        files = manifest(engine="files", artifact="database.sqlite3")
        postgres = manifest(engine="postgresql")
        assert manifest_problems(sqlite) == [
            "tables (row count per table) is missing or not name: count"
        ]
        assert manifest_problems(files) == ["members (the number of archive entries) is missing"]
        assert manifest_problems(postgres) == ["database is missing"]

    def test_unknown_format_and_bad_times(self) -> None:
        problems = manifest_problems(manifest(format=2, started="yesterday", duration_s=-1))
        assert problems == [
            "format is 2, this module reads format 1",
            "started 'yesterday' is not a UTC timestamp",
            "duration_s -1 is not a number of seconds",
        ]

    def test_validate_manifest_names_the_file_and_the_next_step(self) -> None:
        with pytest.raises(SnapshotError) as error:
            validate_manifest(["not", "an", "object"], "/b/r1/manifest.json")
        assert str(error.value).startswith(
            "/b/r1/manifest.json does not describe a complete snapshot: it is not a JSON object."
        )
        assert "take a new one (state=present)" in str(error.value)


class TestListing:
    def test_one_file_snapshot_shows_the_files_own_sha256(self) -> None:
        assert snapshot_checksum([FileEntry("database.dump", 10, SHA_A)]) == SHA_A

    def test_directory_dump_gets_one_digest_that_does_not_depend_on_order(self) -> None:
        files = [FileEntry("d/toc.dat", 1, SHA_A), FileEntry("d/3001.dat.gz", 2, SHA_B)]
        digest = snapshot_checksum(files)

        assert digest == snapshot_checksum(list(reversed(files)))
        assert len(digest) == 64 and digest not in (SHA_A, SHA_B)

    def test_directory_digest_changes_when_a_file_changes(self) -> None:
        before = [FileEntry("d/toc.dat", 1, SHA_A), FileEntry("d/3001.dat.gz", 2, SHA_B)]
        after = [FileEntry("d/toc.dat", 1, SHA_A), FileEntry("d/3001.dat.gz", 2, SHA_A)]

        assert snapshot_checksum(before) != snapshot_checksum(after)

    def test_summary_says_whether_the_snapshot_was_verified_before_it_was_kept(self) -> None:
        listed = summarise(manifest(verified=True), "/b/x").as_dict()

        assert listed["verified"] is True
        assert listed["checksum"] == SHA_A
        assert listed["revision"] == "3f2a"

    def test_older_manifests_without_the_field_list_as_unknown(self) -> None:
        data = manifest()
        data.pop("verified", None)

        assert summarise(data, "/b/x").verified is None
        assert manifest_problems(data) == []


class TestVerificationReport:
    expected = (FileEntry("database.dump", 1000, SHA_A), FileEntry("extra.dat", 10, SHA_B))

    def test_matching_files_have_no_problems(self) -> None:
        actual = {"database.dump": FileState(1000, SHA_A), "extra.dat": FileState(10, SHA_B)}
        assert checksum_problems(self.expected, actual) == []

    def test_truncated_file_names_the_file_and_the_expected_size(self) -> None:
        actual = {"database.dump": FileState(400, None), "extra.dat": FileState(10, SHA_B)}
        assert checksum_problems(self.expected, actual) == [
            "database.dump is 400 bytes but the manifest records 1000 (the file is truncated)"
        ]

    def test_changed_content_names_both_checksums(self) -> None:
        actual = {"database.dump": FileState(1000, SHA_B), "extra.dat": FileState(10, SHA_B)}
        assert checksum_problems(self.expected, actual) == [
            f"database.dump has sha256 {SHA_B} but the manifest records {SHA_A} "
            "(same size, so its content was changed or corrupted)"
        ]

    def test_missing_and_grown_files(self) -> None:
        actual = {"database.dump": None, "extra.dat": FileState(11, None)}
        assert checksum_problems(self.expected, actual) == [
            f"database.dump is missing; the manifest records 1000 bytes with sha256 {SHA_A}",
            "extra.dat is 11 bytes but the manifest records 10 (the file is longer than it "
            "should be)",
        ]

    def test_unexpected_files(self) -> None:
        present = ["database.dump", "extra.dat", "manifest.json", "notes.txt"]
        assert unexpected_files(self.expected, present) == ["notes.txt"]

    def test_row_counts(self) -> None:
        problems = row_count_problems(
            {"users": 3, "orders": 10, "gone": 1}, {"users": 3, "orders": 9, "new": 0}, "db"
        )
        assert problems == [
            "db: table gone is missing (the manifest records it)",
            "db: table new is not in the manifest",
            "db: table orders has 9 rows but the manifest records 10",
        ]

    def test_integrity_check(self) -> None:
        assert integrity_problems(["ok"], "db") == []
        rows = [f"row {n} missing from index i" for n in range(7)]
        assert integrity_problems(rows, "db") == [
            "db: PRAGMA integrity_check reported: row 0 missing from index i; row 1 missing "
            "from index i; row 2 missing from index i; row 3 missing from index i; row 4 "
            "missing from index i (and 2 more)"
        ]

    def test_toc_entries_skip_comments(self) -> None:
        listing = (
            ";\n; Archive created at 2026-11-22\n;\n"
            "215; 1259 16385 TABLE public users app\n"
            "3340; 0 16385 TABLE DATA public users app\n\n"
        )
        assert toc_entry_count(listing) == 2


class TestRetention:
    snapshots = (
        summary("d", "2026-11-04T00:00:00.000000Z"),
        summary("a", "2026-11-01T00:00:00.000000Z"),
        summary("c", "2026-11-03T00:00:00.000000Z"),
        summary("b", "2026-11-02T00:00:00.000000Z"),
    )

    def test_keeps_the_newest(self) -> None:
        plan = retention_plan(self.snapshots, 2, [])
        assert plan.kept == ("d", "c")
        assert plan.deleted == ("b", "a")

    def test_protected_old_snapshot_is_kept_in_addition(self) -> None:
        plan = retention_plan(self.snapshots, 2, ["a"])
        assert plan.kept == ("d", "c", "a")
        assert plan.deleted == ("b",)

    def test_protected_new_snapshot_counts_towards_keep(self) -> None:
        plan = retention_plan(self.snapshots, 2, ["d"])
        assert plan.kept == ("d", "c")

    def test_protect_of_unknown_ids_changes_nothing(self) -> None:
        assert retention_plan(self.snapshots, 4, ["zzz"]).deleted == ()

    def test_newest_is_by_start_time_not_by_id(self) -> None:
        snapshots = [
            summary("zzz-old", "2026-01-01T00:00:00.000000Z"),
            summary("aaa-new", "2026-02-01T00:00:00.000000Z"),
        ]
        assert retention_plan(snapshots, 1, []).deleted == ("zzz-old",)

    def test_keep_zero_is_refused(self) -> None:
        with pytest.raises(SnapshotError, match="never deletes the newest snapshot"):
            retention_plan(self.snapshots, 0, [])

    def test_nothing_to_prune(self) -> None:
        assert retention_plan([], 3, []) == retention_plan([], 3, ["x"])

    def test_stale_partials_by_last_write(self) -> None:
        now = 100_000.0
        partials = {
            ".old.partial": now - 3601,
            ".busy.partial": now - 10,
            ".edge.partial": now - 3600,
        }
        assert stale_partials(partials, now) == [".old.partial"]


class TestRestoreNaming:
    def test_pg_names(self) -> None:
        assert pg_restore_target("app", "20261122T020304Z-1a2b3c") == (
            "app_restore_20261122t020304z_1a2b3c"
        )
        assert pg_before_name("app", "20261122T020304Z-1a2b3c") == (
            "app_before_20261122t020304z_1a2b3c"
        )

    def test_long_database_names_are_shortened_to_keep_the_id(self) -> None:
        name = pg_before_name("x" * 60, "20261122T020304Z-1a2b3c")
        assert len(name.encode()) == PG_IDENTIFIER_MAX_BYTES
        assert name.endswith("_before_20261122t020304z_1a2b3c")

    def test_shortening_never_splits_a_multibyte_character(self) -> None:
        name = pg_restore_target("ж" * 40, "20261122T020304Z-1a2b3c")
        assert len(name.encode()) <= PG_IDENTIFIER_MAX_BYTES
        assert name.startswith("ж")

    def test_too_long_snapshot_id_is_refused(self) -> None:
        with pytest.raises(SnapshotError, match="too long to name a PostgreSQL database"):
            pg_before_name("app", "x" * 60)

    def test_pg_plan(self) -> None:
        plan = pg_restore_plan("app", "r1", None, True)
        assert plan == RestorePlan("postgresql", "app_restore_r1", "app", True, "app_before_r1")
        assert pg_restore_plan("app", "r1", "scratch", False).kept_as is None

    @pytest.mark.parametrize(
        ("target", "message"),
        [("app", "must not be the live database"), ("x" * 64, "longer than 63 bytes")],
    )
    def test_pg_plan_refuses(self, target: str, message: str) -> None:
        with pytest.raises(SnapshotError, match=message):
            pg_restore_plan("app", "r1", target, True)

    def test_sqlite_plan(self) -> None:
        plan = sqlite_restore_plan("/srv/app/db.sqlite3", "r1", None, True)
        assert plan.target == "/srv/app/db.sqlite3.restore-r1"
        assert plan.kept_as == "/srv/app/db.sqlite3.before-r1"

    def test_sqlite_swap_needs_the_same_directory(self) -> None:
        with pytest.raises(SnapshotError, match="must be in the directory of"):
            sqlite_restore_plan("/srv/app/db.sqlite3", "r1", "/tmp/x.sqlite3", True)
        assert sqlite_restore_plan("/srv/app/db.sqlite3", "r1", "/tmp/x", False).target == "/tmp/x"

    def test_sqlite_target_cannot_be_the_live_file(self) -> None:
        with pytest.raises(SnapshotError, match="must not be the live database"):
            sqlite_restore_plan("/srv/app/db.sqlite3", "r1", "/srv/app/./db.sqlite3", False)


class TestSql:
    @pytest.mark.parametrize(
        ("tables", "tool"),
        [("alembic", "alembic"), ("django", "django"), ("alembic,django", "alembic")],
    )
    def test_revision_is_read_from_the_migration_tool_s_table(self, tables: str, tool: str) -> None:
        assert revision_query(tables + "\n") == REVISION_SQL[tool]

    def test_no_migration_table_means_no_revision_query(self) -> None:
        assert revision_query("") is None

    def test_database_properties_from_a_pg15_row(self) -> None:
        row = {
            "datname": "app",
            "owner": "app",
            "encoding_name": "UTF8",
            "datcollate": "C.UTF-8",
            "datctype": "C.UTF-8",
            "datlocprovider": "i",
            "daticulocale": "und",
            "server_version": "15.18",
            "size_bytes": 7000000,
        }
        properties = database_properties(row)
        assert properties["locale_provider"] == "icu"
        assert create_database_sql("app_restore_r1", properties) == (
            'CREATE DATABASE "app_restore_r1" WITH TEMPLATE template0 OWNER "app" '
            "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'und' LC_COLLATE 'C.UTF-8' "
            "LC_CTYPE 'C.UTF-8'"
        )

    def test_database_properties_from_an_old_server(self) -> None:
        properties = database_properties({"owner": "app", "encoding_name": "UTF8"})
        assert properties["locale_provider"] == "libc"
        assert create_database_sql("x", properties) == (
            'CREATE DATABASE "x" WITH TEMPLATE template0 OWNER "app" ENCODING \'UTF8\''
        )

    def test_swap_is_one_transaction(self) -> None:
        plan = RestorePlan("postgresql", "app_restore_r1", "app", True, "app_before_r1")
        assert swap_sql(plan) == (
            "BEGIN;\n"
            'ALTER DATABASE "app" RENAME TO "app_before_r1";\n'
            'ALTER DATABASE "app_restore_r1" RENAME TO "app";\n'
            "COMMIT;\n"
        )

    def test_swap_without_a_live_database_only_renames_the_restored_one(self) -> None:
        plan = RestorePlan("postgresql", "app_restore_r1", "app", True, None)
        assert 'RENAME TO "app_before' not in swap_sql(plan)


class TestCompression:
    def test_compress_level_is_passed_for_postgresql(self) -> None:
        request = build_request(
            {
                "state": "present",
                "dest": "/b",
                "engine": "postgresql",
                "database": "app",
                "compress": 1,
            }
        )
        assert request.compress == 1

    @pytest.mark.parametrize("level", [-1, 10, True])
    def test_compress_level_outside_0_to_9_is_refused(self, level: object) -> None:
        with pytest.raises(SnapshotError, match="compress must be a pg_dump level from 0 to 9"):
            build_request(
                {
                    "state": "present",
                    "dest": "/b",
                    "engine": "postgresql",
                    "database": "app",
                    "compress": level,
                }
            )

    def test_compress_is_refused_for_sqlite(self) -> None:
        with pytest.raises(SnapshotError, match="compress applies to engine=postgresql only"):
            build_request(
                {
                    "state": "present",
                    "dest": "/b",
                    "engine": "sqlite",
                    "sqlite_path": "/d.db",
                    "compress": 1,
                }
            )
