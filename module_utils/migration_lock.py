# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The migration lock: which kind, its key, how its holder is recorded and named.

A PostgreSQL database is locked with a session advisory lock whose session names the
holder (application_name); a SQLite database with flock on a file next to it, which
holds the holder as JSON. Pure functions; holding the lock is the module's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.database_url import Database
from ansible.module_utils.migration_error import MigrationError

# Modules run on the managed host's Python, which ansible-core 2.19 allows down to 3.8,
# so this file avoids newer stdlib names such as datetime.UTC.
UTC = timezone.utc  # noqa: UP017

LOCK_FILE_NAME = ".bluegreen-migrate.lock"
# application_name of the session that holds the PostgreSQL lock; PostgreSQL keeps 63 bytes.
APPLICATION_NAME_PREFIX = "bluegreen-migrate"
APPLICATION_NAME_MAX = 63


@dataclass(frozen=True)
class LockPlan:
    """How the migration lock will be held."""

    method: str  # postgresql, flock, none
    path: str | None = None  # the flock file
    reason: str = ""


def choose_lock(
    method: str, database: Database | None, lock_file: str | None, url_env: str
) -> LockPlan:
    """Which lock to take for `method`, given the database; MigrationError when impossible."""
    if method == "none":
        return LockPlan("none", reason="lock: none was requested")
    if method == "flock" and lock_file:
        return LockPlan("flock", path=lock_file)
    if database is None:
        raise MigrationError(
            f"lock={method} needs the database URL to choose and place the lock, but "
            f"{url_env} is set neither in env_file nor in environment; set "
            "database_url_env to the variable that holds it, or set lock: flock with "
            "lock_file, or lock: none"
        )
    if method == "postgresql" or (method == "auto" and database.kind == "postgresql"):
        if database.kind != "postgresql":
            raise MigrationError(
                f"lock=postgresql needs a PostgreSQL database, but {url_env} points at "
                f"a {database.kind} database; use lock: auto or lock: flock"
            )
        return LockPlan("postgresql")
    if database.kind == "sqlite":
        if database.sqlite_path is None:
            if method == "flock":
                raise MigrationError("lock=flock needs lock_file for an in-memory SQLite database")
            return LockPlan("none", reason="the SQLite database is in memory")
        directory = database.sqlite_path.rsplit("/", 1)[0] or "/"
        return LockPlan("flock", path=f"{directory}/{LOCK_FILE_NAME}")
    raise MigrationError(
        f"lock={method} supports PostgreSQL (advisory lock) and SQLite (flock next to the "
        f"database file), but {url_env} points at another kind of database; set "
        "lock: flock with lock_file (it only excludes migrators on this host) or lock: none"
    )


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) the migration lock."""

    name: str
    hostname: str
    pid: int | None
    release: str
    since: float | None  # Unix time

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hostname": self.hostname,
            "pid": self.pid,
            "release": self.release,
            "since": format_utc(self.since) if self.since is not None else None,
        }


def format_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def holder_json(holder: LockHolder) -> str:
    """The text written into the flock file by the process that holds the lock."""
    record = holder.as_dict()
    record["since_epoch"] = holder.since
    return json.dumps(record, sort_keys=True) + "\n"


def holder_from_json(text: str) -> LockHolder | None:
    """The holder recorded in a flock file; None when it is empty or unreadable."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    since = record.get("since_epoch")
    pid = record.get("pid")
    return LockHolder(
        name=str(record.get("name") or ""),
        hostname=str(record.get("hostname") or "?"),
        pid=pid if isinstance(pid, int) else None,
        release=str(record.get("release") or "?"),
        since=float(since) if isinstance(since, (int, float)) else None,
    )


def _ascii(text: str) -> str:
    return "".join(char if 32 < ord(char) < 127 and char != "/" else "_" for char in text)


def application_name(holder: LockHolder) -> str:
    """application_name of the session holding the PostgreSQL lock, within 63 bytes.

    ``bluegreen-migrate/<since>/<pid>/<hostname>/<release>``: the holder is recorded on
    the session itself, so a second migrator can name it from pg_stat_activity without
    a table in the application's schema (which Alembic autogenerate would try to drop).
    """
    since = str(int(holder.since or 0))
    head = f"{APPLICATION_NAME_PREFIX}/{since}/{holder.pid or 0}/"
    room = APPLICATION_NAME_MAX - len(head) - 1
    host = _ascii(holder.hostname)[: max(room // 2, room - len(holder.release))]
    release = _ascii(holder.release)[: room - len(host)]
    return f"{head}{host}/{release}"


def holder_from_application_name(text: str, name: str) -> LockHolder | None:
    """The holder recorded by application_name(); None for a session that is not ours."""
    parts = text.split("/", 4)
    if len(parts) != 5 or parts[0] != APPLICATION_NAME_PREFIX:
        return None
    _, since, pid, hostname, release = parts
    return LockHolder(
        name=name,
        hostname=hostname or "?",
        pid=int(pid) if pid.isdigit() else None,
        release=release or "?",
        since=float(since) if since.isdigit() and since != "0" else None,
    )


def advisory_lock_ids(key: int) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows the advisory lock on the bigint `key`."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def describe_holder(holder: LockHolder | None, now: float) -> str:
    if holder is None:
        return "a process that has not recorded itself yet"
    text = f"{holder.hostname} pid {holder.pid if holder.pid is not None else '?'}"
    text += f" (release {holder.release})"
    if holder.since is not None:
        age = max(0, int(now - holder.since))
        text += f" since {format_utc(holder.since)} ({age} s ago)"
    return text


def lock_busy_message(
    *,
    name: str,
    holder: LockHolder | None,
    where: str,
    waited: float,
    now: float,
    detail: str = "",
) -> str:
    """Why the migration did not start: who holds the lock, and what to do."""
    waited_text = f" after waiting {waited:.1f} s" if waited > 0 else ""
    extra = f" ({detail})" if detail else ""
    return (
        f"migration lock for {name} is held by {describe_holder(holder, now)}{extra} "
        f"[{where}]; nothing was migrated{waited_text}. Another migrator is running: wait "
        "for it to finish and run again, or raise lock_timeout to wait for it. The lock is "
        "released as soon as the holding process exits, so a lock never outlives it"
    )
