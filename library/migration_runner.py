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
    C(old_fields)) is classified from its operations instead. When Alembic cannot render the
    whole span offline, each revision is rendered on its own (C(upgrade <previous>:<revision>
    --sql)), so only the ones that need a live connection are unknown, and treated as breaking.
  - On a database with no tables (apart from C(alembic_version) or C(django_migrations))
    nothing is checked, since no running colour can depend on a schema that does not exist
    yet. For Alembic the module counts the tables itself, when the database is at base and the
    plan upgrades; if it cannot read them, the migrations are checked and a warning says why.
  - A service whose application migrates when it starts (Flask-Migrate's C(upgrade()) in
    C(create_app())) would apply migrations during the commands that only read, outside the
    lock and the checks. So the module reads the tool's version table itself (the
    C(alembic_version) revisions, the number of C(django_migrations) rows) before the first
    tool command and again after the read-only ones (history, current, offline SQL, the Django
    helper), for every state and before applying. When it changed, the task fails naming both
    values and the fix, with RV(changed) true and RV(migrated_while_reading).
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
  container:
    description:
      - Run the tool in a one-off container of the release's image (the container
        runtime) instead of the release's virtualenv, C(docker run --rm) on the host's
        network as O(container.user), with O(container.volumes) and the variables of
        O(env_file) and O(environment) passed by name. The image's working directory is the
        release's root, so O(command) names the same paths as for a virtualenv.
      - The module then runs as root (the engine's socket), not as the service's user.
    type: dict
    suboptions:
      engine:
        description: The engine's command line program.
        type: path
        default: /usr/bin/docker
      image:
        description: The release's image (C(<name>:<version>)).
        type: str
        required: true
      user:
        description:
          - The user the container runs as (the service's), by name on the host, or C(uid:gid).
        type: str
        required: true
      volumes:
        description: Volumes as C(docker run --volume) takes them (configuration, data).
        type: list
        elements: str
        default: []
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
    queries the connection) is treated as breaking, unless the database has no tables."
  - The PostgreSQL lock needs psycopg2 (Debian C(python3-psycopg2)), psycopg 3, or C(psql)
    (C(postgresql-client)) on the host, in that order of preference. It is a session lock,
    so the database URL must reach PostgreSQL directly, not a transaction-mode pooler.
  - "The module's own reads (the table count, the version table) use the same drivers in one
    read-only session named C(bluegreen-migrate-read), or open a SQLite file read-only.
    Without a driver, or when the server cannot be reached, they are skipped with a warning,
    and the migrations are checked as on a database in use. They only know PostgreSQL and
    SQLite, and Alembic's default version table C(alembic_version) in the search path."
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
  description:
    - The revision before the task, in the same form as RV(current).
    - V(null) for Django when the tool migrated by itself while it read
      (RV(migrated_while_reading)), since it was read after that.
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
  description:
    - True only when the revision moved, also when the tool moved it by itself while the
      module only read (RV(migrated_while_reading)).
  returned: always
  type: bool
migrated_while_reading:
  description:
    - How the tool's version table changed during the commands that only read, which made
      the task fail. The service migrates when its application starts; give it a migrate
      command that does not.
  returned: when the tool migrated the database while the module only read it
  type: dict
  contains:
    table:
      description: V(alembic_version) or V(django_migrations).
      type: str
    before:
      description:
        - Before the first tool command. Alembic, the revision (several joined by commas);
          Django, how many migrations were applied. V(null) for none.
      type: str
    after:
      description: After the read-only commands, in the same form.
      type: str
  sample: {table: alembic_version, before: null, after: 06884b17c50f}
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
import pwd
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
from ansible.module_utils.container_runtime import one_off_argv
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
    alembic_step_spans,
    breaking_of,
    build_request,
    classify_pending,
    empty_database_note,
    failed_migration_message,
    irreversible_message,
    migrated_while_reading_message,
    refusal_message,
    relative_path,
)
from ansible.module_utils.postgresql_access import (
    PG_CONNECT_TIMEOUT,
    PostgresError,
    PsqlSession,
    PsycopgSession,
    open_session,
    quote_literal,
    stderr_tail,
)
from ansible.module_utils.sql_statements import (
    Classifier,
    Schema,
    Statement,
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
    container=dict(
        type="dict",
        options=dict(
            engine=dict(type="path", default="/usr/bin/docker"),
            image=dict(type="str", required=True),
            user=dict(type="str", required=True),
            volumes=dict(type="list", elements="str", default=[]),
        ),
    ),
)
# How often a waiting migrator tries the lock again.
LOCK_POLL_SECONDS = 0.5
# Preference order for the PostgreSQL lock session; tests narrow it to one.
PG_DRIVERS = ("psycopg2", "psycopg", "psql")
# application_name of the session that only reads, so pg_stat_activity tells it from the
# lock's session.
READER_APPLICATION_NAME = "bluegreen-migrate-read"
# Makes that session's later statements read-only; a SELECT, since the sessions expect rows.
READ_ONLY_SESSION_SQL = "SELECT set_config('default_transaction_read_only', 'on', false)"
# Where each tool records what it applied (Alembic's default version table).
VERSION_TABLES = {"alembic": "alembic_version", "django": "django_migrations"}


class ToolFailed(MigrationError):
    """A tool command exited non-zero; carries its output for the task result."""

    def __init__(self, message: str, completed: Completed) -> None:
        super().__init__(message)
        self.completed = completed


class NoPostgresDriver(MigrationError):
    """Neither psycopg2, psycopg 3 nor psql is available for the PostgreSQL lock."""


class DatabaseUnreadable(MigrationError):
    """bluegreen could not read the database itself: no URL, no driver, or an error."""


class MigratedWhileReading(MigrationError):
    """The tool's version table changed during commands that only read."""

    def __init__(self, table: str, before: str | None, after: str | None) -> None:
        super().__init__(migrated_while_reading_message(table, before, after))
        self.table = table
        self.before = before
        self.after = after

    def as_result(self) -> dict[str, Any]:
        """The task result's account of it: changed, and (Alembic) the revisions moved."""
        result: dict[str, Any] = {
            "changed": True,
            "migrated_while_reading": {
                "table": self.table,
                "before": self.before,
                "after": self.after,
            },
        }
        if self.table == VERSION_TABLES["alembic"]:
            result.update(previous=self.before, current=self.after)
        else:
            # Django's helper read the applied migrations after the tool's start had
            # migrated them, so the state before is not known.
            result["previous"] = None
        return result


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


def numeric_user(user: str) -> str:
    """``uid:gid`` of a user named on this host (the container has no such name);
    ``uid:gid`` given as such is kept."""
    if ":" in user:
        return user
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise MigrationError(
            f"the user {user} the migration's container runs as does not exist on this host: "
            "deploy the release first (bluegreen_deploy creates the service's user)"
        ) from None
    return f"{entry.pw_uid}:{entry.pw_gid}"


class Runner:
    """Runs the tool's commands in the release directory with the colour's environment."""

    def __init__(
        self, module: AnsibleModule, request: MigrationRequest, environment: dict[str, str]
    ) -> None:
        self.module = module
        self.chdir = request.chdir
        self.environment = dict(environment)
        container = module.params.get("container")
        if container:
            # The tool runs in a one-off container of the release's image, whose layout is
            # the release directory's; the values of the named variables reach it from
            # this process's environment, never from the command line.
            self.base = one_off_argv(
                container["engine"],
                container["image"],
                user=numeric_user(container["user"]),
                env_names=sorted(environment),
                volumes=container["volumes"],
                command=list(request.command),
            )
            return
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


def sqlite_rows(path: str | None, sql: str) -> list[tuple[str, ...]]:
    """The answer to `sql` from a SQLite database opened read-only; a database file that
    does not exist yet (or an in-memory one) answers as an empty database.
    DatabaseUnreadable on an error."""
    exists = bool(path) and os.path.exists(str(path))
    target = f"{Path(str(path)).as_uri()}?mode=ro" if exists else ":memory:"
    try:
        connection = sqlite3.connect(target, uri=True)
        try:
            rows = connection.execute(sql).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise DatabaseUnreadable(f"reading the SQLite database {path} failed: {exc}") from exc
    return [tuple("" if value is None else str(value) for value in row) for row in rows]


def sqlite_tables(path: str | None) -> list[str]:
    """The CREATE TABLE statements of a SQLite database, read-only; [] when it is missing."""
    try:
        rows = sqlite_rows(
            path, "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
        )
    except DatabaseUnreadable:
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


def connected_session(
    module: AnsibleModule, database: Database, application: str, purpose: str
) -> PsycopgSession | PsqlSession:
    """A session to the release's PostgreSQL database named `application`; MigrationError
    naming `purpose` and what to check when it cannot connect."""
    params = dict(database.pg_params)
    params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    params["application_name"] = application
    try:
        return pg_session(module, params)
    except NoPostgresDriver:
        raise
    except Exception as exc:  # psycopg2, psycopg and psql fail with unrelated exceptions
        where = ", ".join(
            f"{key} {params[key]}" for key in ("host", "port", "dbname", "user") if key in params
        )
        raise MigrationError(
            f"could not connect to PostgreSQL for {purpose} ({where}): "
            f"{str(exc).strip()}; check the database URL in the environment and that the "
            "database accepts connections from this host"
        ) from exc


@contextlib.contextmanager
def postgresql_lock(
    module: AnsibleModule, database: Database, request: MigrationRequest
) -> Iterator[dict[str, Any]]:
    """Hold a session advisory lock for the duration, in a session named for this holder."""
    session = connected_session(
        module, database, application_name(this_holder(request)), "the migration lock"
    )
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
# Reading the database itself
# --------------------------------------------------------------------------------------


class DatabaseReader:
    """Read-only questions bluegreen asks the database itself rather than the tool: how
    many tables it has, and what the tool's version table records. PostgreSQL through one
    session of the lock's drivers, opened at the first question and not retried once it
    failed; SQLite opened read-only. DatabaseUnreadable says why it cannot answer."""

    def __init__(self, module: AnsibleModule, database: Database | None, url_env: str) -> None:
        self.module = module
        self.database = database
        self.url_env = url_env
        self._session: PsycopgSession | PsqlSession | None = None
        self._failure: DatabaseUnreadable | None = None

    @property
    def supported(self) -> bool:
        """Whether the database is of a kind bluegreen reads itself."""
        return self.database is not None and self.database.kind in ("postgresql", "sqlite")

    def table_count(self, ignoring: str) -> int:
        """The application's tables, leaving out `ignoring` (the tool's version table),
        SQLite's internal tables and PostgreSQL's system schemas (pg_*, which users cannot
        create, and information_schema)."""
        rows = self._rows(
            postgresql=(
                "SELECT count(*) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
                f"AND n.nspname NOT LIKE 'pg\\_%' AND c.relname <> {quote_literal(ignoring)} "
                # A table an extension created (PostGIS's spatial_ref_sys) is not the
                # application's schema.
                "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "
                "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid "
                "AND d.deptype = 'e')"
            ),
            sqlite=(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                f"AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> {quote_literal(ignoring)}"
            ),
        )
        return int(rows[0][0])

    def has_table(self, table: str) -> bool:
        """Whether `table` exists (PostgreSQL, in the search path, as the tool finds it)."""
        rows = self._rows(
            postgresql=f"SELECT coalesce(to_regclass({quote_literal(table)})::text, '')",
            sqlite=(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                f"AND name = {quote_literal(table)}"
            ),
        )
        return bool(rows and rows[0][0])

    def values(self, table: str, expression: str) -> list[str]:
        """`expression` over the rows of `table`, which must exist."""
        sql = f"SELECT {expression} FROM {table}"
        return [row[0] for row in self._rows(postgresql=sql, sqlite=sql)]

    def _rows(self, postgresql: str, sqlite: str) -> list[tuple[str, ...]]:
        database = self.database
        if database is None:
            raise DatabaseUnreadable(f"{self.url_env} is not set in the environment")
        if database.kind == "sqlite":
            return sqlite_rows(database.sqlite_path, sqlite)
        if database.kind != "postgresql":
            raise DatabaseUnreadable("bluegreen reads only PostgreSQL and SQLite databases")
        if self._failure is not None:
            raise self._failure
        try:
            if self._session is None:
                self._session = connected_session(
                    self.module, database, READER_APPLICATION_NAME, "a read-only check"
                )
                self._session.rows(READ_ONLY_SESSION_SQL)
            return self._session.rows(postgresql)
        except NoPostgresDriver as exc:
            self._failure = DatabaseUnreadable(
                "no PostgreSQL driver on this host: psycopg2, psycopg 3 or psql"
            )
            raise self._failure from exc
        except Exception as exc:  # the drivers fail with their own exceptions
            self._failure = DatabaseUnreadable(str(exc).strip() or type(exc).__name__)
            self.close()
            raise self._failure from exc

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.close()
            self._session = None


def recorded_version(reader: DatabaseReader, tool: str) -> str | None:
    """What the tool's version table records: Alembic's revision(s), or how many Django
    migrations are applied; None when the table does not exist or is empty."""
    table = VERSION_TABLES[tool]
    if not reader.has_table(table):
        return None
    if tool == "alembic":
        return ",".join(sorted(reader.values(table, "version_num"))) or None
    count = int(reader.values(table, "count(*)")[0])
    return f"{count} applied migration(s)" if count else None


def migration_while_reading(
    module: AnsibleModule, reader: DatabaseReader, tool: str, before: str | None
) -> MigratedWhileReading | None:
    """The change of the tool's version table since `before`; None when there is none, or
    when it cannot be read again (with a warning)."""
    table = VERSION_TABLES[tool]
    try:
        after = recorded_version(reader, tool)
    except DatabaseUnreadable as exc:
        module.warn(
            f"could not read {table} again after the tool's read-only commands ({exc}), so "
            "bluegreen cannot tell whether the tool migrated the database by itself"
        )
        return None
    return MigratedWhileReading(table, before, after) if after != before else None


@contextlib.contextmanager
def only_reading(module: AnsibleModule, reader: DatabaseReader, tool: str) -> Iterator[None]:
    """Run the tool's read-only commands (history, current, offline SQL) in the body, and
    raise MigratedWhileReading when its version table changed meanwhile, even when a
    command then failed: a service whose application migrates when it starts does it
    outside the lock and the checks, and a plan read after that is empty."""
    try:
        before = recorded_version(reader, tool)
    except DatabaseUnreadable as exc:
        if reader.supported:
            module.warn(
                f"could not read {VERSION_TABLES[tool]} before running the tool ({exc}), so "
                "bluegreen cannot tell whether the tool migrates the database by itself "
                "when it should only read"
            )
        yield
        return
    try:
        yield
    except (MigrationError, PostgresError) as exc:
        migrated = migration_while_reading(module, reader, tool, before)
        if migrated is not None:
            raise migrated from exc
        raise
    migrated = migration_while_reading(module, reader, tool, before)
    if migrated is not None:
        raise migrated


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
    def __init__(
        self,
        runner: Runner,
        request: MigrationRequest,
        database: Database | None,
        reader: DatabaseReader,
    ):
        self.runner = runner
        self.request = request
        self.database = database
        self.reader = reader

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
        if self._is_first_schema(direction, state.current):
            self._plan_first_schema(plan, completed)
        else:
            self._classify(plan, state.current, completed)
        plan.apply = [[direction, target_name]]
        return plan

    def _is_first_schema(self, direction: str, current: str | None) -> bool:
        """Whether the plan creates the first schema: an upgrade from base of a database
        with no table but the version table, on which no running colour can depend."""
        if direction != "upgrade" or current is not None:
            return False
        try:
            return self.reader.table_count(ignoring=VERSION_TABLES["alembic"]) == 0
        except DatabaseUnreadable as exc:
            self.runner.module.warn(
                f"could not tell whether the database is empty ({exc}), so its first "
                "migrations are checked for breaking operations as on a database in use"
            )
            return False

    def _plan_first_schema(self, plan: Plan, completed: Completed) -> None:
        """Every migration as part of the first schema, with the SQL when it renders."""
        plan.notes.append(empty_database_note(len(plan.pending)))
        for migration in plan.pending:
            migration.statements.append(
                empty_database_verdict(migration.description or migration.revision)
            )
        if completed.rc != 0:
            self.runner.module.warn(
                "could not render the first schema's SQL offline, so executed_statements "
                f"stays empty: {stderr_tail(completed.stderr or completed.stdout) or '(none)'}"
            )
            return
        statements = split_statements(completed.stdout, self._dialect())
        plan.executed_sql = [statement.text for statement in statements if statement.tokens]

    def _classify(self, plan: Plan, current: str | None, completed: Completed) -> None:
        """Classify each migration from its offline SQL. When the whole span cannot be
        rendered, each step is rendered on its own, so that one migration that needs a
        live connection leaves only itself unknown."""
        renderings = [([migration.revision for migration in plan.pending], completed)]
        if completed.rc != 0 and len(plan.pending) > 1:
            revisions = [migration.revision for migration in plan.pending]
            spans = alembic_step_spans(plan.direction, current, revisions, plan.target or "base")
            renderings = [
                ([revision], self.runner.run([plan.direction, span, "--sql"]))
                for revision, span in zip(revisions, spans, strict=True)
            ]
        dialect = self._dialect()
        statements: list[Statement] = []
        sections: dict[str, list[Statement]] = {}
        for revisions, rendering in renderings:
            if rendering.rc != 0:
                error = unplannable_verdict(rendering.stderr or rendering.stdout)
                for migration in plan.pending:
                    if migration.revision in revisions:
                        migration.statements.append(error)
                continue
            rendered = split_statements(rendering.stdout, dialect)
            statements.extend(rendered)
            sections.update(alembic_sql_sections(rendered, plan.direction)[1])
        tables = sqlite_tables(self.database.sqlite_path) if self.database else []
        classifier = Classifier(dialect, seeded_schema(tables, dialect))
        classify_pending(plan.pending, sections, classifier)
        plan.executed_sql = [statement.text for statement in statements if statement.tokens]

    def _dialect(self) -> str:
        return self.database.dialect if self.database else "postgresql"

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
            notes.append(empty_database_note(len(kept_steps)))
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
    reader: DatabaseReader,
    result: dict[str, Any],
) -> None:
    """Under the lock: read, plan, check, apply, re-read. Fills `result`; fails on refusal."""
    wanted = "upgrade" if request.state == "upgraded" else "downgrade"
    with only_reading(module, reader, request.tool):
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
    reader: DatabaseReader | None = None
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
        reader = DatabaseReader(module, database, request.database_url_env)
        tool: Alembic | Django = (
            Alembic(runner, request, database, reader)
            if request.tool == "alembic"
            else Django(runner, request, database)
        )

        if request.state == "current":
            with only_reading(module, reader, request.tool):
                state = tool.read(sql=False)
                result.update(current=state.current, previous=state.current, head=state.head)
            module.exit_json(**result)

        if request.state == "planned" or module.check_mode:
            with only_reading(module, reader, request.tool):
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
            apply_plan(module, tool, request, reader, result)
    except MigratedWhileReading as exc:
        result.update(exc.as_result())
        module.fail_json(msg=str(exc), **result)
    except LockBusy as exc:
        result["holder"] = exc.holder.as_dict() if exc.holder else None
        module.fail_json(msg=str(exc), **result)
    except ToolFailed as exc:
        result.update(exc.completed.as_result())
        module.fail_json(msg=str(exc), **result)
    except (MigrationError, PostgresError) as exc:
        module.fail_json(msg=str(exc), **result)
    finally:
        if reader is not None:
            reader.close()
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
