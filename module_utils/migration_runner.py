# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The migration_runner module's request and plan, over the concerns it composes.

The module runs Alembic or Django from a release's virtualenv, holds a lock while it
does, and refuses migrations that would break the colour still serving traffic. This file
holds what ties those together: the validated request, the pending migrations with their
classified statements, and the messages for a refused, irreversible or failed plan. The
concerns live in their own files: env_file, database_url, migration_lock,
sql_statements, alembic_migrations, django_migrations, and postgresql_access (shared with
backup_snapshot).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.django_migrations import parse_django_targets
from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.postgresql_access import stderr_tail
from ansible.module_utils.sql_statements import (
    BREAKING,
    EXPAND_SAFE,
    Classifier,
    Statement,
    StatementVerdict,
    excerpt,
    is_control,
    worst,
)

TOOLS = ("alembic", "django")
DEFAULT_COMMANDS = {
    "alembic": ("venv/bin/alembic",),
    "django": ("venv/bin/python", "manage.py"),
}


@dataclass(frozen=True)
class MigrationRequest:
    """A validated migration_runner request."""

    name: str
    tool: str
    chdir: str
    command: tuple[str, ...]
    state: str
    target: str | None
    allow_breaking: bool
    lock: str
    lock_timeout: float
    lock_key: int
    lock_file: str | None
    release: str
    database_url_env: str


def default_lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for the application `name`."""
    digest = hashlib.sha256(f"bluegreen-migrate:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def build_request(params: Mapping[str, Any]) -> MigrationRequest:
    """Validate the module parameters; MigrationError says which one is wrong and why."""
    name = str(params.get("name") or "").strip()
    if not name:
        raise MigrationError("name must not be empty: it identifies the application's lock")
    tool = params["tool"]
    if tool not in TOOLS:
        raise MigrationError(f"tool {tool!r} is not supported: use one of {', '.join(TOOLS)}")
    chdir = str(params["chdir"]).rstrip("/") or "/"
    if not chdir.startswith("/"):
        raise MigrationError(f"chdir {chdir!r} must be an absolute path (the release directory)")
    command = tuple(params.get("command") or DEFAULT_COMMANDS[tool])
    if not command or not command[0]:
        raise MigrationError("command must name a program, e.g. [venv/bin/alembic]")
    state = params.get("state") or "current"
    target = params.get("target")
    target = str(target).strip() if target is not None else None
    if state == "downgraded" and not target:
        raise MigrationError(
            "state=downgraded needs target: the revision recorded before the release "
            "(the current value returned by the upgrade)"
        )
    if tool == "django" and target:
        parse_django_targets(target)
    lock_timeout = float(params.get("lock_timeout") or 0)
    if lock_timeout < 0:
        raise MigrationError("lock_timeout must be 0 (fail at once) or a number of seconds")
    lock_key = params.get("lock_key")
    if lock_key is None:
        lock_key = default_lock_key(name)
    elif not -(2**63) <= int(lock_key) < 2**63:
        raise MigrationError("lock_key must fit in a signed 64-bit integer (PostgreSQL bigint)")
    release = str(params.get("release") or "").strip() or chdir.rsplit("/", 1)[-1]
    return MigrationRequest(
        name=name,
        tool=tool,
        chdir=chdir,
        command=command,
        state=state,
        target=target or None,
        allow_breaking=bool(params.get("allow_breaking")),
        lock=params.get("lock") or "auto",
        lock_timeout=lock_timeout,
        lock_key=int(lock_key),
        lock_file=params.get("lock_file"),
        release=release,
        database_url_env=params.get("database_url_env") or "DATABASE_URL",
    )


@dataclass
class PendingMigration:
    """One migration the plan applies (or unapplies), with its classified statements."""

    revision: str
    file: str | None
    description: str
    direction: str  # upgrade or downgrade
    statements: list[StatementVerdict] = field(default_factory=list)
    irreversible: str | None = None

    @property
    def classification(self) -> str:
        return worst(verdict.classification for verdict in self.statements)

    @property
    def reason(self) -> str:
        level = self.classification
        reasons = [
            f"{verdict.operation}: {verdict.reason}" if verdict.reason else verdict.operation
            for verdict in self.statements
            if verdict.classification == level and level != EXPAND_SAFE
        ]
        if not reasons:
            return "no statement needs attention" if self.statements else "runs no SQL"
        return "; ".join(dict.fromkeys(reasons))

    def breaking(self) -> list[dict[str, Any]]:
        return [
            {
                "revision": self.revision,
                "file": self.file,
                "operation": verdict.operation,
                "statement": excerpt(verdict.sql),
                "reason": verdict.reason,
            }
            for verdict in self.statements
            if verdict.classification == BREAKING
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "file": self.file,
            "description": self.description,
            "direction": self.direction,
            "classification": self.classification,
            "reason": self.reason,
            "irreversible": self.irreversible,
            "statements": [verdict.as_dict() for verdict in self.statements],
        }


def classify_pending(
    pending: Sequence[PendingMigration],
    sql_by_revision: Mapping[str, Sequence[Statement]],
    classifier: Classifier,
) -> None:
    """Fill each pending migration's statements, in plan order, with one classifier."""
    for migration in pending:
        statements = sql_by_revision.get(migration.revision, ())
        verdicts = classifier.classify([s for s in statements if not is_control(s)])
        migration.statements[:0] = verdicts


def breaking_of(pending: Sequence[PendingMigration]) -> list[dict[str, Any]]:
    return [item for migration in pending for item in migration.breaking()]


def refusal_message(
    pending: Sequence[PendingMigration], direction: str, current: str | None, tool: str
) -> str:
    """Why the plan is refused for breaking statements, naming operation, SQL and file."""
    items = breaking_of(pending)
    shown = [
        f"{item['operation']} in {item['revision']} ({item['file'] or 'file unknown'}): "
        f"{item['reason']} [{item['statement']}]"
        for item in items[:3]
    ]
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    at = current or ("zero" if tool == "django" else "base")
    if direction == "downgrade":
        advice = (
            "A downgrade that drops data loses what was written since the upgrade: restore "
            "the snapshot taken before the release instead, or set allow_breaking: true to "
            "accept the loss"
        )
    else:
        advice = (
            "Releases are expand-only because the old colour keeps running on the new "
            "schema: ship this contract step in a later release, once no running colour "
            "uses what it removes, or set allow_breaking: true if the old colour does not "
            "need it"
        )
    return (
        f"refusing to {direction}: {len(items)} breaking operation(s): "
        + "; ".join(shown)
        + f"{more}. {advice}. Nothing was applied; the database is still at {at}"
    )


def irreversible_message(pending: Sequence[PendingMigration], target: str, current: str) -> str:
    blocked = [migration for migration in pending if migration.irreversible]
    named = "; ".join(
        f"{migration.revision} ({migration.file or 'file unknown'}): {migration.irreversible}"
        for migration in blocked
    )
    return (
        f"cannot downgrade from {current} to {target}: {named}. Nothing was applied. "
        "Restore the database snapshot taken before the release instead (bluegreen restore)"
    )


def failed_migration_message(
    *,
    direction: str,
    tool: str,
    stopped_at: str | None,
    started_at: str | None,
    failing: PendingMigration | None,
    stderr: str,
) -> str:
    """What a failed upgrade/downgrade left behind, and what to do next."""
    zero = "zero" if tool == "django" else "base"
    where = f"the database is at {stopped_at or zero}"
    moved = "" if stopped_at == started_at else f" (it started at {started_at or zero})"
    culprit = (
        f" while running {failing.revision} ({failing.file or 'file unknown'})"
        if failing is not None
        else ""
    )
    tail = stderr_tail(stderr)
    headline = error_headline(stderr)
    said = f"{headline}\n{tail}" if headline and headline != tail else tail
    return (
        f"{tool} {direction} failed{culprit}; {where}{moved}. Fix the migration (or the "
        "database) and run again; to go back, downgrade to the revision recorded before "
        f"the release or restore the snapshot. {tool} said: {said or '(nothing)'}"
    )


# The line a Python traceback ends with: "module.Error: message", at the start of a line.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Failure|Warning)\b.*:\s*\S")


def error_headline(stderr: str) -> str:
    """The exception a tool's traceback ended with (its first line is what the operator
    reads, and a traceback's last lines are code and carets); '' when there is none."""
    for line in reversed(stderr.splitlines()):
        if _EXCEPTION_LINE.match(line):
            return line.strip()
    return ""


def empty_database_note(count: int) -> str:
    """Why the migrations of a database with no tables were not checked."""
    return (
        "the database has no tables: no running colour can depend on its schema, so "
        f"the {count} migration(s) are applied without checking for breaking operations"
    )


def migrated_while_reading_message(table: str, before: str | None, after: str | None) -> str:
    """What it means that the tool's version table changed while bluegreen only read, and
    how to stop it."""
    return (
        "the migration tool changed the database while bluegreen only read it "
        f"({table} went from {before or 'none'} to {after or 'none'}): the service migrates "
        "its schema when its application starts, outside bluegreen's lock and checks. Give "
        "bluegreen_service_migrate_command an entry point that does not migrate on start "
        "(see examples/third-party/ihatemoney/README.md)"
    )


def alembic_step_spans(
    direction: str, current: str | None, revisions: Sequence[str], target: str
) -> list[str]:
    """The `from:to` of each revision's own step, in plan order, to render them one by one:
    an upgrade step starts at the revision before it (the bare revision from base), a
    downgrade step ends at the one after it (`target` for the last)."""
    if direction == "upgrade":
        starts = [current, *revisions[:-1]]
        pairs = zip(starts, revisions, strict=True)
        return [f"{start}:{rev}" if start else rev for start, rev in pairs]
    ends = [*revisions[1:], target]
    return [f"{rev}:{end}" for rev, end in zip(revisions, ends, strict=True)]


def relative_path(path: str | None, chdir: str) -> str | None:
    """`path` relative to the release directory when it is inside it."""
    if not path:
        return None
    prefix = chdir.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path
