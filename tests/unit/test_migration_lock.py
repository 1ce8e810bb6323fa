"""The migration lock: which kind for which database, and how its holder is recorded."""

from __future__ import annotations

import pytest
from ansible.module_utils.database_url import parse_database_url
from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.migration_lock import (
    LockHolder,
    advisory_lock_ids,
    application_name,
    choose_lock,
    holder_from_application_name,
    holder_from_json,
    holder_json,
    lock_busy_message,
)
from ansible.module_utils.migration_runner import default_lock_key


class TestChooseLock:
    def test_auto_on_postgresql_is_an_advisory_lock(self) -> None:
        database = parse_database_url("postgresql://db1/app", "/srv")

        assert choose_lock("auto", database, None, "DATABASE_URL").method == "postgresql"

    def test_auto_on_sqlite_is_flock_next_to_the_database(self) -> None:
        database = parse_database_url("sqlite:////var/lib/app/app.db", "/srv")

        plan = choose_lock("auto", database, None, "DATABASE_URL")

        assert (plan.method, plan.path) == ("flock", "/var/lib/app/.bluegreen-migrate.lock")

    def test_explicit_lock_file(self) -> None:
        plan = choose_lock("flock", None, "/run/lock/app.lock", "DATABASE_URL")

        assert (plan.method, plan.path) == ("flock", "/run/lock/app.lock")

    def test_without_a_database_url_it_says_which_variable_is_missing(self) -> None:
        with pytest.raises(MigrationError, match="APP_DB is set neither in env_file"):
            choose_lock("auto", None, None, "APP_DB")

    def test_postgresql_lock_on_sqlite_is_refused(self) -> None:
        database = parse_database_url("sqlite:////x.db", "/srv")

        with pytest.raises(MigrationError, match="needs a PostgreSQL database"):
            choose_lock("postgresql", database, None, "DATABASE_URL")

    def test_auto_on_another_database_asks_for_a_choice(self) -> None:
        with pytest.raises(MigrationError, match="lock: flock with lock_file"):
            choose_lock("auto", parse_database_url("mysql://h/db", "/"), None, "DATABASE_URL")

    def test_none(self) -> None:
        assert choose_lock("none", None, None, "DATABASE_URL").method == "none"


class TestLockHolder:
    def test_default_key_is_stable_and_fits_a_bigint(self) -> None:
        key = default_lock_key("sampleapp")

        assert key == default_lock_key("sampleapp")
        assert key != default_lock_key("otherapp")
        assert -(2**63) <= key < 2**63

    def test_advisory_lock_ids_split_the_key_as_pg_locks_shows_it(self) -> None:
        assert advisory_lock_ids(0x0000000100000002) == (1, 2)
        assert advisory_lock_ids(-1) == (0xFFFFFFFF, 0xFFFFFFFF)

    def test_flock_file_round_trip(self) -> None:
        holder = LockHolder("sampleapp", "app-green", 1234, "2.0.0", 1_700_000_000.0)

        assert holder_from_json(holder_json(holder)) == holder

    def test_empty_flock_file_has_no_holder(self) -> None:
        assert holder_from_json("") is None

    def test_application_name_round_trip_within_63_bytes(self) -> None:
        holder = LockHolder("app", "app-green", 1234, "2.0.0", 1_700_000_000.0)

        name = application_name(holder)

        assert name == "bluegreen-migrate/1700000000/1234/app-green/2.0.0"
        assert holder_from_application_name(name, "app") == holder

    def test_long_hostname_and_release_are_cut_to_fit(self) -> None:
        holder = LockHolder("app", "h" * 80, 4194304, "r" * 80, 1_700_000_000.0)

        name = application_name(holder)
        parsed = holder_from_application_name(name, "app")

        assert len(name.encode()) <= 63
        assert parsed is not None and parsed.pid == 4194304
        assert parsed.hostname.startswith("hhh") and parsed.release.startswith("rrr")

    def test_foreign_application_name_is_not_a_holder(self) -> None:
        assert holder_from_application_name("psql", "app") is None

    def test_busy_message_names_holder_and_what_to_do(self) -> None:
        holder = LockHolder("sampleapp", "app-green", 1234, "2.0.0", 1000.0)

        message = lock_busy_message(
            name="sampleapp", holder=holder, where="flock on /x.lock", waited=0, now=1012.0
        )

        assert message.startswith(
            "migration lock for sampleapp is held by app-green pid 1234 (release 2.0.0) "
            "since 1970-01-01T00:16:40Z (12 s ago) [flock on /x.lock]; nothing was migrated."
        )
        assert "lock_timeout" in message

    def test_busy_message_without_a_recorded_holder(self) -> None:
        message = lock_busy_message(name="a", holder=None, where="flock on /x", waited=2.5, now=0)

        assert "held by a process that has not recorded itself yet" in message
        assert "after waiting 2.5 s" in message
