#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_runner
short_description: Plan, apply and undo a release's Alembic or Django migrations, expand-only
description:
  - Runs a service's schema migrations from the release's virtualenv, once per release (use
    C(run_once)), with the colour's environment (database URL and secrets) read on the host.
  - Drives the tool through its own commands, run in O(chdir) without a shell. Alembic
    C(history -v), C(current), C(upgrade)/C(downgrade) and, for the plan, offline mode
    C(upgrade <from>:<to> --sql). Django C(manage.py shell -c) with a small read-only helper
    (migration graph, applied migrations, the plan C(migrate) would run, reversibility of
    each operation, and the SQL of every planned migration as C(sqlmigrate) renders it, all
    in one process), and C(migrate).
  - A Django migration whose SQL cannot be rendered in advance (an operation that inspects a
    table an earlier migration of the same plan creates, such as C(RenameIndex) with
    C(old_fields)) is classified from its operations instead. On a database with no tables
    nothing is checked, since no running colour can depend on a schema that does not exist yet.
  - Every statement the plan would run is classified from its SQL as V(expand-safe),
    V(warning) or V(breaking) and attributed to its migration file. A release is
    expand-only because the old colour keeps serving on the new schema, so the task refuses
    a plan with breaking statements (drop or rename of a table or column, a type change,
    NOT NULL without a default, truncation, ...) unless O(allow_breaking=true), naming the
    operation, the statement and the file. Warnings (locking DDL such as C(CREATE INDEX)
    without C(CONCURRENTLY) on PostgreSQL, backfills, Python code) are reported, not refused.
  - A downgrade is refused when a step cannot be undone (an Alembic C(downgrade) function
    that only passes or raises; Django C(RunPython) without C(reverse_code), C(RunSQL)
    without C(reverse_sql)), naming the step. The same breaking rule applies to a downgrade, because
    dropping what the upgrade added loses what was written since.
  - While applying, a lock guarantees that two migrators never run at once. On PostgreSQL it
    is a session advisory lock (C(pg_try_advisory_lock)) held by this module, through
    psycopg2, psycopg 3 or a C(psql) coprocess, while the tool runs as a child process; the
    session's C(application_name) records host, pid, release and start time. On SQLite it is
    C(flock) on a lock file next to the database, with the holder written into it. A second
    migrator fails (after O(lock_timeout)) naming the holder. Either lock is released when
    its holder exits, so it never goes stale.
version_added: "0.1.0"
options:
  name:
    description:
      - Name of the application. Used in messages and to derive the default O(lock_key), so
        every migrator of the same application competes for the same lock.
    type: str
    required: true
  tool:
    description:
      - The migration tool of the service.
    type: str
    required: true
    choices: [alembic, django]
  chdir:
    description:
      - The release directory, in which the commands run. Relative program paths in
        O(command) and relative SQLite paths in the database URL are relative to it.
      - When C(<chdir>/venv/bin) exists it is put first in C(PATH), so O(command) may name a
        console script of the release (C(sampleapp-migrate)) without its path.
    type: path
    required: true
  command:
    description:
      - The tool's base command, as a list of program and arguments; the module appends the
        subcommand (C(current), C(upgrade 0002), C(sqlmigrate app 0002), ...).
      - "Alembic: the C(alembic) program with its options, e.g. V([venv/bin/alembic, -c,
        alembic.ini]), or a wrapper that passes its arguments to alembic, e.g.
        V([venv/bin/sampleapp-migrate])."
      - "Django: the release's Python and C(manage.py), e.g. V([venv/bin/python, manage.py])."
      - Defaults to V([venv/bin/alembic]) or V([venv/bin/python, manage.py]).
    type: list
    elements: str
  env_file:
    description:
      - The colour's environment file (systemd C(EnvironmentFile) syntax, C(KEY="value")) with
        the database URL and secrets, read on the host and passed to the tool. Its values
        are never returned; the values of secret-looking variables (names with PASSWORD,
        SECRET, TOKEN, KEY, DSN, DATABASE_URL, ...) and any URL password are masked in the
        output.
    type: path
  environment:
    description:
      - More environment variables for the tool; they override O(env_file).
      - Every value is masked wherever it appears in the task output (C(no_log)), so keep
        short, non-secret values such as C(1) in O(env_file).
    type: dict
    default: {}
  database_url_env:
    description:
      - The environment variable that holds the database URL (SQLAlchemy or dj-database-url
        style). The module reads it to choose the lock, to find a SQLite file and to know
        the SQL dialect. The tool reads the database from its own configuration.
    type: str
    default: DATABASE_URL
  state:
    description:
      - V(current) reports the current and head revisions; nothing else runs.
      - V(planned) reports the plan to O(target) (default head), upgrade or downgrade, with
        each migration's file, SQL and classification; nothing is applied.
      - V(upgraded) applies the migrations up to O(target) (default head). A target that is
        already applied changes nothing (it never downgrades). Neither does a database at an
        Alembic revision the release does not ship (a later release migrated it), since releases
        are expand-only, so the older code runs on it; a warning says so.
      - V(downgraded) unapplies migrations down to O(target), which must be applied, from a
        release that ships the applied revisions.
    type: str
    choices: [current, planned, upgraded, downgraded]
    default: current
  target:
    description:
      - "Alembic: a revision id (or unique prefix), V(head) or V(base)."
      - "Django: C(app_label.migration_name), C(app_label.zero), a bare C(app_label) (its
        latest migration), or several separated by commas, as RV(current) returns them, so
        the value recorded before a release can be passed back to downgrade. Apps that are
        not named are left as they are."
      - Required with O(state=downgraded).
    type: str
  allow_breaking:
    description:
      - Apply the plan even if statements are classified breaking. Only for a deliberate
        contract step, once no running colour needs what it removes, or a downgrade whose
        data loss was accepted.
    type: bool
    default: false
  lock:
    description:
      - How to exclude other migrators while applying.
      - V(auto) takes a PostgreSQL advisory lock when the database URL is PostgreSQL, and
        C(flock) on C(<database directory>/.bluegreen-migrate.lock) when it is SQLite.
      - V(postgresql) and V(flock) force one kind; V(flock) on a non-SQLite database needs
        O(lock_file) and only excludes migrators on this host.
      - V(none) takes no lock.
      - No lock is taken for V(current), V(planned) or in check mode, which change nothing.
    type: str
    choices: [auto, postgresql, flock, none]
    default: auto
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another migrator; V(0) fails at once, naming it.
    type: float
    default: 0
  lock_key:
    description:
      - The PostgreSQL advisory-lock key (a signed 64-bit integer).
      - Defaults to a stable hash of O(name).
    type: int
  lock_file:
    description:
      - The file to C(flock). Defaults to C(.bluegreen-migrate.lock) in the directory of the
        SQLite database, which must be writable by the user the task runs as.
    type: path
  release:
    description:
      - The release recorded as the lock holder and shown to a second migrator.
      - Defaults to the last component of O(chdir).
    type: str
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: V(upgraded) and V(downgraded) in check mode behave like V(planned) (the plan and
      its SQL, nothing applied, no lock). A plan the real run would refuse is returned with a
      warning instead of failing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "RV(executed_statements) is the SQL the tool renders for the applied range in offline
    mode (Alembic C(--sql), Django C(sqlmigrate)), captured under the lock just before
    applying, not a log of the live session. The live run can differ where the offline
    renderer cannot know: Alembic batch operations on SQLite copy the table, and Python data
    steps (C(RunPython), code that calls C(op.get_bind)) emit SQL only when they run."
  - "The classifier works on SQL text only, with a tokenizer that honours quotes, comments
    and dollar quoting. Where the old definition matters (the table copy Django and Alembic
    batch mode use on SQLite) it reads the current table definitions from the SQLite file;
    on PostgreSQL it judges a type change without knowing the old type, so it is breaking.
    Unrecognised statements are warnings, or breaking when they contain DROP, RENAME,
    TRUNCATE or DELETE. A migration whose SQL cannot be rendered offline (Alembic code that
    queries the connection) is treated as breaking."
  - The PostgreSQL lock needs psycopg2 (Debian C(python3-psycopg2)), psycopg 3, or C(psql)
    (C(postgresql-client)) on the host, in that order of preference. It is a session lock,
    so the database URL must reach PostgreSQL directly, not a transaction-mode pooler.
  - Alembic histories with several heads must be merged, or a head named in O(target).
seealso:
  - name: Alembic offline mode
    description: How Alembic renders migrations as SQL scripts.
    link: https://alembic.sqlalchemy.org/en/latest/offline.html
  - name: Django sqlmigrate
    description: The SQL of one Django migration.
    link: https://docs.djangoproject.com/en/stable/ref/django-admin/#sqlmigrate
  - name: PostgreSQL advisory locks
    description: Session-level advisory locks and pg_try_advisory_lock.
    link: https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Record the schema revision before the release
  migration_runner:
    name: sampleapp
    tool: alembic
    chdir: /srv/sampleapp/releases/2.0.0
    command: [venv/bin/sampleapp-migrate]
    env_file: /etc/sampleapp/green.env
  run_once: true
  register: migrate_before

- name: Show what the release would migrate, and whether it is expand-only
  migration_runner:
    name: sampleapp
    tool: alembic
    chdir: /srv/sampleapp/releases/2.0.0
    command: [venv/bin/sampleapp-migrate]
    env_file: /etc/sampleapp/green.env
    state: planned
  run_once: true
  register: migrate_plan

- name: Apply the release's migrations (refused if any of them is breaking)
  migration_runner:
    name: sampleapp
    tool: alembic
    chdir: /srv/sampleapp/releases/2.0.0
    command: [venv/bin/sampleapp-migrate]
    env_file: /etc/sampleapp/green.env
    state: upgraded
    lock_timeout: 30
  run_once: true
  become: true
  become_user: sampleapp
  register: migrate_result

- name: Undo them, back to the revision recorded before the release
  migration_runner:
    name: sampleapp
    tool: alembic
    chdir: /srv/sampleapp/releases/2.0.0
    command: [venv/bin/sampleapp-migrate]
    env_file: /etc/sampleapp/green.env
    state: downgraded
    target: "{{ migrate_before.current }}"
  run_once: true

- name: Migrate a Django service to its latest migrations
  migration_runner:
    name: shop
    tool: django
    chdir: /srv/shop/releases/5.1.0
    command: [venv/bin/python, manage.py]
    env_file: /etc/shop/blue.env
    state: upgraded
  run_once: true

- name: Ship the contract step that drops a column no running colour reads any more
  migration_runner:
    name: shop
    tool: django
    chdir: /srv/shop/releases/5.2.0
    env_file: /etc/shop/green.env
    state: upgraded
    target: catalog.0031_remove_product_legacy_code
    allow_breaking: true
  run_once: true
"""

RETURN = r"""
current:
  description:
    - The schema revision after the task (in check mode and for V(planned), the one before).
    - "Alembic: the revision id, V(null) for an empty database. Django: every app's latest
      applied migration as C(app.migration), C(app.zero) for none, joined by commas; this
      string is a valid O(target)."
  returned: always
  type: str
  sample: "0002"
previous:
  description: The revision before the task, in the same form as RV(current).
  returned: always
  type: str
  sample: "0001"
head:
  description: The latest revision the release ships (Django, every app's leaf migrations).
  returned: always
  type: str
  sample: "0003"
target:
  description:
    - The revision the plan goes to (Alembic, the resolved id or V(base); Django, O(target)
      or RV(head)).
  returned: when state is planned, upgraded or downgraded
  type: str
  sample: "0003"
direction:
  description:
    - V(upgrade), V(downgrade) or V(none) (already there). Django plans that both apply and
      unapply (several targets, V(planned)) are V(mixed).
  returned: when state is planned, upgraded or downgraded
  type: str
  sample: upgrade
pending:
  description:
    - The migrations of the plan, in the order they run (for a downgrade, the ones undone,
      newest first). After a successful apply, these are the ones that were applied.
  returned: when state is planned, upgraded or downgraded
  type: list
  elements: dict
  contains:
    revision:
      description: Alembic revision id, or Django C(app.migration).
      type: str
    file:
      description: The migration file, relative to O(chdir) when it is inside it.
      type: str
    description:
      description: Alembic's message, or Django's operations.
      type: str
    direction:
      description: V(upgrade) or V(downgrade).
      type: str
    classification:
      description: The worst classification of its statements.
      type: str
      sample: expand-safe
    reason:
      description: What makes it a warning or breaking.
      type: str
    irreversible:
      description: For a downgrade, why this step cannot be undone; V(null) when it can.
      type: str
    statements:
      description: Each SQL statement with V(sql), V(classification), V(operation), V(reason).
      type: list
      elements: dict
  sample:
    - revision: "0003"
      file: migrations/versions/0003_drop_items_legacy_code.py
      description: "drop a column the previous release still reads: breaking"
      direction: upgrade
      classification: breaking
      reason: "drop column items.legacy_code: the old colour still reads and writes this
        column, and its data is lost"
      irreversible: null
      statements:
        - sql: ALTER TABLE items DROP COLUMN legacy_code
          classification: breaking
          operation: drop column items.legacy_code
          reason: the old colour still reads and writes this column, and its data is lost
breaking:
  description: Every breaking statement of the plan, with its revision, file and excerpt.
  returned: when state is planned, upgraded or downgraded
  type: list
  elements: dict
  sample:
    - revision: "0003"
      file: migrations/versions/0003_drop_items_legacy_code.py
      operation: drop column items.legacy_code
      statement: ALTER TABLE items DROP COLUMN legacy_code
      reason: the old colour still reads and writes this column, and its data is lost
executed_statements:
  description:
    - The SQL of the applied range as the tool renders it offline, statement by statement
      (transaction control and version bookkeeping included), captured just before applying.
      Empty when nothing was applied. See the notes for where the live run can differ.
  returned: when state is planned, upgraded or downgraded
  type: list
  elements: str
  sample: ["ALTER TABLE items ADD COLUMN note TEXT", "UPDATE alembic_version SET ..."]
changed:
  description: True only when the revision moved.
  returned: always
  type: bool
lock:
  description: How the migration lock was held.
  returned: always
  type: dict
  contains:
    method:
      description: V(postgresql), V(flock) or V(none).
      type: str
    held:
      description: Whether the lock was taken (never for current, planned or check mode).
      type: bool
    key:
      description: The advisory-lock key (PostgreSQL).
      type: int
    path:
      description: The lock file (flock).
      type: str
    driver:
      description: V(psycopg2), V(psycopg) or V(psql) (PostgreSQL).
      type: str
    waited_s:
      description: Seconds spent waiting for the lock.
      type: float
  sample: {method: flock, held: true, path: /var/lib/sampleapp/.bluegreen-migrate.lock,
           waited_s: 0.0}
refusal:
  description:
    - For V(planned), why applying this plan would be refused (breaking statements without
      O(allow_breaking), or a step a downgrade cannot undo); V(null) when it would not be.
  returned: when state is planned
  type: str
started:
  description:
    - Whether the tool began applying the plan. V(false) when the task failed before that
      (refused, lock busy, planning failed), so the database was not touched.
  returned: always
  type: bool
duration_s:
  description: Seconds the tool spent applying the migrations; V(0) when nothing was applied.
  returned: always
  type: float
  sample: 1.42
holder:
  description: The lock holder that made the task fail (hostname, pid, release, since).
  returned: when the lock is held by another migrator
  type: dict
  sample: {name: sampleapp, hostname: app-green, pid: 1234, release: 2.0.0,
           since: "2025-01-01T10:00:00Z"}
rc:
  description: Exit code of the tool command that failed.
  returned: when a tool command failed
  type: int
cmd:
  description: The tool command that failed.
  returned: when a tool command failed
  type: list
  elements: str
stdout:
  description: Standard output of the tool command that failed.
  returned: when a tool command failed
  type: str
stderr:
  description: Standard error of the tool command that failed.
  returned: when a tool command failed
  type: str
"""

import contextlib
import fcntl
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.alembic_migrations import (
    alembic_downgrade_problem,
    alembic_heads,
    alembic_marked_current,
    alembic_plan,
    alembic_sql_sections,
    alembic_unknown_revision,
    parse_alembic_current,
    parse_alembic_history,
    resolve_alembic_target,
    unknown_revision_note,
)
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.database_url import Database, parse_database_url
from ansible.module_utils.django_migrations import (
    django_helper_script,
    django_irreversible,
    django_operation_verdict,
    django_state,
    empty_database_verdict,
    parse_django_helper,
    parse_django_targets,
    python_operation_verdict,
)
from ansible.module_utils.env_file import parse_env_file, secret_values
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
from ansible.module_utils.migration_runner import (
    MigrationRequest,
    PendingMigration,
    breaking_of,
    build_request,
    classify_pending,
    failed_migration_message,
    irreversible_message,
    refusal_message,
    relative_path,
)
from ansible.module_utils.postgresql_access import (
    PG_CONNECT_TIMEOUT,
    PostgresError,
    PsqlSession,
    PsycopgSession,
    open_session,
    stderr_tail,
)
from ansible.module_utils.sql_statements import (
    Classifier,
    Schema,
    is_control,
    split_statements,
    unplannable_verdict,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    name=dict(type="str", required=True),
    tool=dict(type="str", required=True, choices=["alembic", "django"]),
    chdir=dict(type="path", required=True),
    command=dict(type="list", elements="str"),
    env_file=dict(type="path"),
    environment=dict(type="dict", default={}, no_log=True),
    database_url_env=dict(type="str", default="DATABASE_URL"),
    state=dict(
        type="str", default="current", choices=["current", "planned", "upgraded", "downgraded"]
    ),
    target=dict(type="str"),
    allow_breaking=dict(type="bool", default=False),
    lock=dict(type="str", default="auto", choices=["auto", "postgresql", "flock", "none"]),
    lock_timeout=dict(type="float", default=0.0),
    lock_key=dict(type="int", no_log=False),
    lock_file=dict(type="path"),
    release=dict(type="str"),
)
# How often a waiting migrator tries the lock again.
LOCK_POLL_SECONDS = 0.5
# Preference order for the PostgreSQL lock session; tests narrow it to one.
PG_DRIVERS = ("psycopg2", "psycopg", "psql")


class ToolFailed(MigrationError):
    """A tool command exited non-zero; carries its output for the task result."""

    def __init__(self, message: str, completed: Completed) -> None:
        super().__init__(message)
        self.completed = completed


class NoPostgresDriver(MigrationError):
    """Neither psycopg2, psycopg 3 nor psql is available for the PostgreSQL lock."""


class LockBusy(MigrationError):
    """Another migrator holds the lock."""

    def __init__(self, message: str, holder: LockHolder | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Completed:
    cmd: list[str]
    rc: int
    stdout: str
    stderr: str

    def as_result(self) -> dict[str, Any]:
        # The Django helper is a whole script passed with -c: name it instead of repeating it.
        cmd = [
            arg if "\n" not in arg else "<the migration_runner helper script>" for arg in self.cmd
        ]
        return {"cmd": cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


# --------------------------------------------------------------------------------------
# The environment and the commands
# --------------------------------------------------------------------------------------


def load_environment(module: AnsibleModule, env_file: str | None) -> dict[str, str]:
    """The tool's extra environment: env_file, then the environment option on top."""
    environment: dict[str, str] = {}
    if env_file:
        try:
            text = Path(env_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise MigrationError(
                f"could not read env_file {env_file}: {exc.strerror or exc}; deploy the "
                "colour's environment first, or run the task with become: true"
            ) from exc
        environment, ignored = parse_env_file(text)
        if ignored:
            lines = ", ".join(str(number) for number in ignored)
            module.warn(
                f"env_file {env_file}: ignored line(s) {lines} without a valid NAME=value "
                "(systemd ignores them too)"
            )
    environment.update({str(k): str(v) for k, v in module.params["environment"].items()})
    module.no_log_values.update(secret_values(environment))
    return environment


def resolve_program(program: str, chdir: str, search_path: str) -> str:
    """The absolute path of the tool's program; MigrationError when it is not there."""
    if "/" in program:
        path = program if program.startswith("/") else os.path.join(chdir, program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise MigrationError(
            f"the migration command {path} does not exist or is not executable; check that "
            "the release is deployed with its virtualenv in chdir, and the command option"
        )
    found = shutil.which(program, path=search_path)
    if found is None:
        raise MigrationError(
            f"the migration command {program} was not found in {chdir}/venv/bin or PATH; "
            "give its path in the command option"
        )
    return found


class Runner:
    """Runs the tool's commands in the release directory with the colour's environment."""

    def __init__(
        self, module: AnsibleModule, request: MigrationRequest, environment: dict[str, str]
    ) -> None:
        self.module = module
        self.chdir = request.chdir
        self.environment = dict(environment)
        venv_bin = os.path.join(request.chdir, "venv", "bin")
        search_path = environment.get("PATH", os.environ.get("PATH", os.defpath))
        if os.path.isdir(venv_bin):
            search_path = f"{venv_bin}:{search_path}"
        self.environment["PATH"] = search_path
        self.base = [resolve_program(request.command[0], request.chdir, search_path)]
        self.base.extend(request.command[1:])

    def run(self, args: list[str]) -> Completed:
        cmd = [*self.base, *args]
        try:
            rc, stdout, stderr = self.module.run_command(
                cmd,
                cwd=self.chdir,
                environ_update=self.environment,
                expand_user_and_vars=False,
                handle_exceptions=False,
            )
        except OSError as exc:
            rc, stdout, stderr = 127, "", f"cannot run {cmd[0]}: {exc}"
        return Completed(cmd=cmd, rc=rc, stdout=stdout, stderr=stderr)

    def output(self, args: list[str], doing: str) -> str:
        """stdout of a command that must succeed; ToolFailed saying what failed otherwise."""
        completed = self.run(args)
        if completed.rc != 0:
            raise self.failure(completed, doing)
        return completed.stdout

    @staticmethod
    def failure(completed: Completed, doing: str) -> ToolFailed:
        return ToolFailed(
            f"{doing} failed (rc {completed.rc}); nothing was migrated. Check the "
            f"database URL in the environment and the release's migrations. Output: "
            f"{stderr_tail(completed.stderr or completed.stdout) or '(none)'}",
            completed,
        )


def sqlite_tables(path: str | None) -> list[str]:
    """The CREATE TABLE statements of a SQLite database, read-only; [] when it is missing."""
    if not path or not os.path.exists(path):
        return []
    try:
        connection = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return []
    return [row[0] for row in rows]


def seeded_schema(tables: list[str], dialect: str) -> Schema:
    schema = Schema()
    for create in tables:
        schema.seed(create, dialect)
    return schema


# --------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------


def this_holder(request: MigrationRequest) -> LockHolder:
    return LockHolder(
        name=request.name,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        release=request.release,
        since=time.time(),
    )


def wait_for(try_once, timeout: float) -> tuple[bool, float]:
    """Call try_once() until it returns True or `timeout` seconds pass; (got it, waited)."""
    started = time.monotonic()
    while True:
        if try_once():
            return True, time.monotonic() - started
        waited = time.monotonic() - started
        if waited >= timeout:
            return False, waited
        time.sleep(min(LOCK_POLL_SECONDS, timeout - waited))


@contextlib.contextmanager
def flock_lock(path: str, request: MigrationRequest) -> Iterator[dict[str, Any]]:
    """Hold flock on `path` for the duration, with this process recorded in the file."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise MigrationError(
            f"could not open the migration lock file {path}: {exc.strerror or exc}; its "
            "directory (the SQLite database's) must exist and be writable by the user the "
            "task runs as (become_user), or set lock_file"
        ) from exc

    def try_once() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        acquired, waited = wait_for(try_once, request.lock_timeout)
        if not acquired:
            try:
                recorded = Path(path).read_text(encoding="utf-8")
            except OSError:
                recorded = ""
            holder = holder_from_json(recorded)
            raise LockBusy(
                lock_busy_message(
                    name=request.name,
                    holder=holder,
                    where=f"flock on {path}",
                    waited=waited,
                    now=time.time(),
                ),
                holder,
            )
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder_json(this_holder(request)).encode(), 0)
        os.fsync(descriptor)
        try:
            yield {"method": "flock", "held": True, "path": path, "waited_s": round(waited, 3)}
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def pg_session(module: AnsibleModule, params: dict[str, str]) -> PsycopgSession | PsqlSession:
    """A session through the first available driver in PG_DRIVERS."""
    session = open_session(params, PG_DRIVERS, module.get_bin_path)
    if session is None:
        raise NoPostgresDriver(
            "the PostgreSQL migration lock needs psycopg2 (apt install python3-psycopg2), "
            "psycopg 3, or psql (apt install postgresql-client) on this host; install one, or "
            "set lock: none if nothing else can migrate this database"
        )
    return session


def pg_holder(session: Any, key: int, name: str) -> tuple[LockHolder | None, str]:
    """Who holds advisory lock `key` in this database, and details for the message."""
    classid, objid = advisory_lock_ids(key)
    rows = session.rows(
        "SELECT a.pid::text, coalesce(a.application_name, ''), "
        "coalesce(host(a.client_addr), 'local socket'), "
        "coalesce(extract(epoch from a.backend_start)::bigint::text, '') "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        f"WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {classid} "
        f"AND l.objid::bigint = {objid} AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    if not rows:
        return None, "it was released just now; run again"
    backend_pid, app_name, client, started = rows[0]
    holder = holder_from_application_name(app_name, name)
    detail = f"PostgreSQL backend pid {backend_pid} from {client}"
    if holder is None:
        holder = LockHolder(
            name=name,
            hostname=client,
            pid=None,
            release=f"unknown, application_name {app_name!r}",
            since=float(started) if started else None,
        )
    return holder, detail


@contextlib.contextmanager
def postgresql_lock(
    module: AnsibleModule, database: Database, request: MigrationRequest
) -> Iterator[dict[str, Any]]:
    """Hold a session advisory lock for the duration, in a session named for this holder."""
    params = dict(database.pg_params)
    params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    params["application_name"] = application_name(this_holder(request))
    try:
        session = pg_session(module, params)
    except NoPostgresDriver:
        raise
    except Exception as exc:  # psycopg2, psycopg and psql fail with unrelated exceptions
        where = ", ".join(
            f"{key} {params[key]}" for key in ("host", "port", "dbname", "user") if key in params
        )
        raise MigrationError(
            f"could not connect to PostgreSQL for the migration lock ({where}): "
            f"{str(exc).strip()}; check the database URL in the environment and that the "
            "database accepts connections from this host"
        ) from exc
    key = request.lock_key
    try:
        acquired, waited = wait_for(
            lambda: (
                session.rows(f"SELECT pg_try_advisory_lock({key})")[0][0].lower() in ("t", "true")
            ),
            request.lock_timeout,
        )
        if not acquired:
            holder, detail = pg_holder(session, key, request.name)
            raise LockBusy(
                lock_busy_message(
                    name=request.name,
                    holder=holder,
                    where=f"PostgreSQL advisory lock {key}",
                    waited=waited,
                    now=time.time(),
                    detail=detail,
                ),
                holder,
            )
        try:
            yield {
                "method": "postgresql",
                "held": True,
                "key": key,
                "driver": session.driver,
                "waited_s": round(waited, 3),
            }
        finally:
            with contextlib.suppress(Exception):
                session.rows(f"SELECT pg_advisory_unlock({key})")
    finally:
        session.close()


@contextlib.contextmanager
def migration_lock(
    module: AnsibleModule, request: MigrationRequest, database: Database | None
) -> Iterator[dict[str, Any]]:
    plan = choose_lock(request.lock, database, request.lock_file, request.database_url_env)
    if plan.method == "flock":
        assert plan.path is not None
        with flock_lock(plan.path, request) as info:
            yield info
    elif plan.method == "postgresql":
        assert database is not None
        with postgresql_lock(module, database, request) as info:
            yield info
    else:
        yield {"method": "none", "held": False, "reason": plan.reason}


# --------------------------------------------------------------------------------------
# The tools
# --------------------------------------------------------------------------------------


@dataclass
class ToolState:
    current: str | None
    head: str | None
    detail: Any = None  # the Alembic graph, or the Django helper's answer


@dataclass
class Plan:
    direction: str
    target: str | None
    pending: list[PendingMigration]
    executed_sql: list[str]
    apply: list[list[str]]  # the tool commands that apply the plan
    notes: list[str] = field(default_factory=list)


class Alembic:
    def __init__(self, runner: Runner, request: MigrationRequest, database: Database | None):
        self.runner = runner
        self.request = request
        self.database = database

    def read(self, sql: bool = True) -> ToolState:
        """The revisions and the current one, in one command (history marks the current).
        `sql` is for Django's sake: Alembic renders the SQL when it plans."""
        history = self.runner.output(
            ["history", "--verbose", "--indicate-current"],
            "reading the migration history and the current revision (alembic history -i)",
        )
        graph = parse_alembic_history(history)
        if not graph:
            raise MigrationError(
                "alembic history lists no revisions: check chdir and command (the alembic.ini "
                "and script_location of the release)"
            )
        marked = alembic_marked_current(history)
        if not marked:
            # Nothing marked: an empty database, or one at a revision of a later release
            # that these scripts do not have (then `current` names it in its error).
            completed = self.runner.run(["current"])
            unknown = alembic_unknown_revision(completed.stderr + completed.stdout)
            if completed.rc != 0 and unknown:
                marked = [unknown]
            elif completed.rc != 0:
                raise self.runner.failure(
                    completed, "reading the current revision (alembic current)"
                )
        return self._state(graph, marked)

    def reread(self, before: ToolState) -> ToolState:
        """The current revision after applying; the revisions themselves did not change."""
        graph = before.detail
        current = parse_alembic_current(
            self.runner.output(["current"], "reading the current revision (alembic current)"),
            graph,
        )
        return self._state(graph, current)

    @staticmethod
    def _state(graph: dict[str, Any], current: list[str]) -> ToolState:
        if len(current) > 1:
            raise MigrationError(
                f"the database is at several revisions ({', '.join(current)}): branches are "
                "not supported; merge them (alembic merge) in a release first"
            )
        return ToolState(
            current=current[0] if current else None,
            head=",".join(alembic_heads(graph)) or None,
            detail=graph,
        )

    def plan(self, state: ToolState, wanted: str | None) -> Plan:
        graph = state.detail
        if wanted == "downgrade" and state.current and self.request.target == state.current:
            # A release deployed over a schema a later release made (and ran on it) goes
            # back to that same revision: nothing to undo, even where it does not ship it.
            note = f"the database is at {state.current} already; nothing to downgrade"
            return Plan("none", state.current, [], [], [], [note])
        target = resolve_alembic_target(self.request.target, graph)
        if state.current is not None and state.current not in graph:
            if wanted == "downgrade":
                raise MigrationError(
                    f"the database is at revision {state.current}, which this release does "
                    "not ship, so it cannot downgrade it: run the downgrade from the release "
                    f"that ships {state.current}"
                )
            note = unknown_revision_note(state.current, state.head, self.request.release)
            return Plan("none", target or "base", [], [], [], [note])
        direction, revisions = alembic_plan(graph, state.current, target)
        notes: list[str] = []
        if wanted == "upgrade" and direction == "downgrade":
            notes.append(
                f"target {target} is behind the current revision {state.current}; "
                "state=upgraded never downgrades, so nothing was done"
            )
            direction, revisions = "none", []
        if wanted == "downgrade" and direction == "upgrade":
            raise MigrationError(
                f"target {target} is ahead of the current revision {state.current or 'base'}; "
                "state=downgraded only goes back: use state=upgraded"
            )
        pending = [
            PendingMigration(
                revision=revision,
                file=relative_path(graph[revision].path, self.request.chdir),
                description=graph[revision].message,
                direction=direction,
            )
            for revision in revisions
        ]
        target_name = target or "base"
        plan = Plan(direction, target_name, pending, [], [], notes)
        if direction == "none":
            return plan
        if direction == "downgrade":
            for migration in pending:
                migration.irreversible = self._downgrade_problem(graph[migration.revision].path)
            if any(migration.irreversible for migration in pending):
                return plan
        span = f"{state.current}:{target_name}" if state.current else target_name
        completed = self.runner.run([direction, span, "--sql"])
        if completed.rc != 0:
            for migration in pending:
                migration.statements.append(
                    unplannable_verdict(completed.stderr or completed.stdout)
                )
        else:
            dialect = self.database.dialect if self.database else "postgresql"
            statements = split_statements(completed.stdout, dialect)
            _, sections = alembic_sql_sections(statements, direction)
            tables = sqlite_tables(self.database.sqlite_path) if self.database else []
            classify_pending(pending, sections, Classifier(dialect, seeded_schema(tables, dialect)))
            plan.executed_sql = [statement.text for statement in statements if statement.tokens]
        plan.apply = [[direction, target_name]]
        return plan

    def _downgrade_problem(self, path: str | None) -> str | None:
        if not path:
            return None
        try:
            return alembic_downgrade_problem(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError) as exc:
            self.runner.module.warn(f"could not check the downgrade() of {path}: {exc}")
            return None

    def failing(self, plan: Plan, stopped_at: str | None, started_at: str | None):
        """The pending migration that was running when the tool failed."""
        order = [migration.revision for migration in plan.pending]
        if plan.direction == "downgrade":
            index = order.index(stopped_at) if stopped_at in order else len(order)
        elif stopped_at in order:
            index = order.index(stopped_at) + 1
        else:
            index = 0
        return plan.pending[index] if index < len(plan.pending) else None


class Django:
    def __init__(self, runner: Runner, request: MigrationRequest, database: Database | None):
        self.runner = runner
        self.request = request
        self.database = database

    def _helper(self, targets: list[tuple[str, str]] | None, sql: bool) -> dict[str, Any]:
        script = django_helper_script(targets, sql)
        return parse_django_helper(
            self.runner.output(["shell", "-v", "0", "-c", script], "planning with manage.py shell")
        )

    def read(self, targets: list[tuple[str, str]] | None = None, sql: bool = True) -> ToolState:
        """The state, and (with `sql`) the SQL of every pending migration, in one process."""
        answer = self._helper(targets, sql)
        return ToolState(
            current=django_state(answer["current"]),
            head=django_state(answer["leaves"]),
            detail=answer,
        )

    def reread(self, before: ToolState) -> ToolState:
        return self.read(sql=False)

    def plan(self, state: ToolState, wanted: str | None) -> Plan:
        targets = parse_django_targets(self.request.target) if self.request.target else None
        answer = state.detail if targets is None else self.read(targets).detail
        notes: list[str] = []
        kept_steps: set[str] = set()
        apply: list[list[str]] = []
        directions: set[str] = set()
        requested = targets if targets is not None else [None]
        for index, target_plan in enumerate(answer["plans"]):
            request_target = requested[index]
            steps = target_plan["steps"]
            if not steps:
                continue
            direction = "downgrade" if steps[0][1] else "upgrade"
            label = target_plan["target"] or "every app's latest migration"
            if wanted == "upgrade" and direction == "downgrade":
                notes.append(
                    f"target {label} is behind the applied migrations; state=upgraded never "
                    "unapplies, so it was left as it is"
                )
                continue
            if wanted == "downgrade" and direction == "upgrade":
                raise MigrationError(
                    f"target {label} is not applied yet: state=downgraded only unapplies; "
                    "use state=upgraded"
                )
            directions.add(direction)
            kept_steps.update(key for key, _ in steps)
            command = ["migrate", "--noinput"]
            if request_target is not None:
                app, name = request_target
                command.extend([app, name] if name else [app])
            apply.append(command)
        direction = (
            directions.pop() if len(directions) == 1 else ("mixed" if directions else "none")
        )
        pending: list[PendingMigration] = []
        dialect = answer.get("vendor") or (self.database.dialect if self.database else "sqlite")
        classifier = Classifier(dialect, seeded_schema(answer.get("tables", []), dialect))
        executed: list[str] = []
        first_schema = bool(answer.get("empty")) and direction == "upgrade"
        if first_schema and kept_steps:
            notes.append(
                "the database has no tables: no running colour can depend on its schema, so "
                f"the {len(kept_steps)} migration(s) are applied without checking for "
                "breaking operations"
            )
        for migration in answer["migrations"]:
            if migration["revision"] not in kept_steps:
                continue
            item = self._pending(migration, classifier, dialect, executed, first_schema)
            pending.append(item)
        target = self.request.target or state.head
        return Plan(direction, target, pending, executed, apply, notes)

    def _pending(
        self,
        migration: dict[str, Any],
        classifier: Classifier,
        dialect: str,
        executed: list[str],
        first_schema: bool,
    ) -> PendingMigration:
        """One planned migration with its statements classified: from the SQL the helper
        rendered, from its operations when that SQL could not be rendered, and as the
        first schema when the database is empty."""
        backwards = migration["backwards"]
        file = relative_path(migration["file"], self.request.chdir)
        operations = migration["operations"]
        item = PendingMigration(
            revision=migration["revision"],
            file=file,
            description="; ".join(op["describe"] for op in operations),
            direction="downgrade" if backwards else "upgrade",
        )
        if backwards:
            item.irreversible = django_irreversible(operations)
            if item.irreversible:
                return item
        if first_schema:
            item.statements.extend(empty_database_verdict(op["describe"]) for op in operations)
            return item
        sql = migration.get("sql")
        if sql is None:
            error = migration.get("sql_error") or "the helper rendered no SQL"
            self.runner.module.warn(
                f"could not render the SQL of {item.revision} ({error}); judged it from its "
                "operations instead"
            )
            item.statements.extend(django_operation_verdict(op, file) for op in operations)
            return item
        statements = split_statements(sql, dialect)
        executed.extend(statement.text for statement in statements if statement.tokens)
        item.statements.extend(classifier.classify([s for s in statements if not is_control(s)]))
        item.statements.extend(
            python_operation_verdict(op["describe"], file) for op in operations if not op["sql"]
        )
        return item

    def failing(self, plan: Plan, stopped_at: str | None, started_at: str | None):
        """The first pending migration that did not reach its goal state."""
        applied = set(self._helper(None).get("applied", []))
        for migration in plan.pending:
            done = (migration.revision in applied) == (migration.direction == "upgrade")
            if not done:
                return migration
        return None


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------


def plan_result(plan: Plan) -> dict[str, Any]:
    return {
        "target": plan.target,
        "direction": plan.direction,
        "pending": [migration.as_dict() for migration in plan.pending],
        "breaking": breaking_of(plan.pending),
        "executed_statements": [],
    }


def apply_plan(
    module: AnsibleModule,
    tool: Alembic | Django,
    request: MigrationRequest,
    result: dict[str, Any],
) -> None:
    """Under the lock: read, plan, check, apply, re-read. Fills `result`; fails on refusal."""
    wanted = "upgrade" if request.state == "upgraded" else "downgrade"
    before = tool.read()
    result.update(current=before.current, previous=before.current, head=before.head)
    plan = tool.plan(before, wanted)
    result.update(plan_result(plan))
    for note in plan.notes:
        module.warn(note)
    if not plan.pending:
        return
    refusal = refusal_of(request, plan, before.current)
    if refusal:
        module.fail_json(msg=refusal, **result)
    result["started"] = True
    started = time.monotonic()
    for command in plan.apply:
        completed = tool.runner.run(command)
        if completed.rc != 0:
            result["duration_s"] = round(time.monotonic() - started, 3)
            after = tool.reread(before)
            failing = tool.failing(plan, after.current, before.current)
            result.update(current=after.current, changed=after.current != before.current)
            result.update(completed.as_result())
            module.fail_json(
                msg=failed_migration_message(
                    direction=plan.direction,
                    tool=request.tool,
                    stopped_at=after.current,
                    started_at=before.current,
                    failing=failing,
                    stderr=completed.stderr or completed.stdout,
                ),
                **result,
            )
    result["duration_s"] = round(time.monotonic() - started, 3)
    after = tool.reread(before)
    result.update(
        current=after.current,
        changed=after.current != before.current,
        executed_statements=plan.executed_sql,
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[("state", "downgraded", ("target",))],
    )
    result: dict[str, Any] = {
        "changed": False,
        "current": None,
        "previous": None,
        "head": None,
        "lock": {"method": "none", "held": False},
        "duration_s": 0.0,
        "started": False,
    }
    try:
        request = build_request(module.params)
        if not os.path.isdir(request.chdir):
            raise MigrationError(
                f"chdir {request.chdir} is not a directory: deploy the release there first"
            )
        environment = load_environment(module, module.params["env_file"])
        url = environment.get(request.database_url_env) or os.environ.get(request.database_url_env)
        database = parse_database_url(url, request.chdir) if url else None
        runner = Runner(module, request, environment)
        tool = (Alembic if request.tool == "alembic" else Django)(runner, request, database)

        if request.state == "current":
            state = tool.read(sql=False)
            result.update(current=state.current, previous=state.current, head=state.head)
            module.exit_json(**result)

        if request.state == "planned" or module.check_mode:
            state = tool.read()
            result.update(current=state.current, previous=state.current, head=state.head)
            wanted = {"upgraded": "upgrade", "downgraded": "downgrade"}.get(request.state)
            plan = tool.plan(state, wanted)
            result.update(plan_result(plan))
            for note in plan.notes:
                module.warn(note)
            refusal = refusal_of(request, plan, state.current)
            if request.state == "planned":
                result["refusal"] = refusal
            elif refusal:
                module.warn(f"check mode: a real run would fail: {refusal}")
            module.exit_json(**result)

        with migration_lock(module, request, database) as lock:
            result["lock"] = lock
            apply_plan(module, tool, request, result)
    except LockBusy as exc:
        result["holder"] = exc.holder.as_dict() if exc.holder else None
        module.fail_json(msg=str(exc), **result)
    except ToolFailed as exc:
        result.update(exc.completed.as_result())
        module.fail_json(msg=str(exc), **result)
    except (MigrationError, PostgresError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


def refusal_of(request: MigrationRequest, plan: Plan, current: str | None) -> str | None:
    """Why a real run of `plan` would be refused before applying anything; None if not."""
    if any(migration.irreversible for migration in plan.pending):
        return irreversible_message(plan.pending, plan.target or "", current or "base")
    if breaking_of(plan.pending) and not request.allow_breaking:
        return refusal_message(plan.pending, plan.direction, current, request.tool)
    return None


if __name__ == "__main__":
    main()
