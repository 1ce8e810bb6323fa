#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_snapshot
short_description: Take, verify, restore and prune verified snapshots of a service's data
description:
  - Takes a snapshot of a PostgreSQL database (C(pg_dump)), a SQLite database (SQLite's online
    backup API) or files and configuration (C(tar)) before a release changes anything, verifies
    it by reading it back, restores it into a fresh database, and applies retention.
  - "A SQLite database is never copied with C(cp): a plain copy of a live file can catch a
    half-written page or miss what is still in the C(-wal) file. The backup API copies a
    consistent state inside a read transaction while the application keeps writing."
  - Each snapshot is a directory C(<dest>/<snapshot_id>/) with the backup files and a
    C(manifest.json) that records the sha256 and size of every file, the engine, the database,
    the schema revision at snapshot time, the release, start, finish and duration, the tool
    versions, and C(complete=true).
  - The snapshot is written into C(<dest>/.<snapshot_id>.partial/) and renamed to
    C(<dest>/<snapshot_id>/) only after every file was written, hashed and (with O(verify))
    verified. A snapshot that could not be completed (dump error, full disk) is removed and the
    task fails with the tool's error; it is never kept or reported as valid.
  - "Verification reads the whole backup: the checksums against the manifest, then for
    PostgreSQL C(pg_restore --list) and C(pg_restore -f /dev/null) (every byte of the archive is
    read and decoded), for SQLite C(PRAGMA integrity_check) and the row count of every table
    against the counts recorded at snapshot time, for files C(tar --list) and the number of
    archive entries."
  - A restore never overwrites data in place. PostgreSQL is restored into a fresh database;
    with O(swap=true) the live database is renamed to C(<database>_before_<id>) and the restored
    one takes its name. (C(pg_restore --clean) into the live database would leave behind tables
    created after the snapshot.) SQLite is restored into a new file next to the live one, checked
    with C(PRAGMA integrity_check), and with O(swap=true) renamed over the live file while the old
    file is kept as C(<path>.before-<id>). Files are extracted into an empty directory.
  - Every restore first verifies the snapshot as O(state=verified) does.
  - "With O(encrypt_to) the snapshot is encrypted at rest with C(age): the dump, the SQLite copy
    or the archive goes through a pipe into C(age --encrypt) and only the ciphertext is written
    (a SQLite copy is made in memory first). The manifest records the recipients and the
    sha256 of the ciphertext. Verification and restore decrypt for real with O(identity), which
    reaches C(age) through a pipe and is never written to a file; a PostgreSQL archive is read
    from that pipe, so its restore runs with one job."
version_added: "0.1.0"
options:
  state:
    description:
      - V(present) takes a snapshot (verified right away unless O(verify=false)). With an explicit
        O(snapshot_id) that already exists nothing is taken, so a re-run is a no-op.
      - V(verified) verifies the snapshot O(snapshot_id); it changes nothing.
      - V(restored) verifies and restores the snapshot O(snapshot_id), see O(restore_target) and
        O(swap).
      - V(absent) deletes the snapshot O(snapshot_id) (and its partial directory, if any).
      - V(pruned) applies retention, see O(keep) and O(protect).
      - V(info) lists the complete snapshots under O(dest), newest first.
    type: str
    choices: [present, verified, restored, absent, pruned, info]
    default: present
  engine:
    description:
      - What to back up. Required with O(state=present).
      - V(postgresql) dumps O(database) with C(pg_dump), in the format O(pg_format).
      - V(sqlite) copies O(sqlite_path) with the online backup API.
      - V(files) archives O(paths) with C(tar --gzip).
      - For the other states the engine is read from the manifest; when given it must match.
    type: str
    choices: [postgresql, sqlite, files]
  dest:
    description:
      - The directory that holds this service's snapshots, one subdirectory per snapshot,
        e.g. C(/var/backups/bluegreen/<app>).
      - Missing directories are created with mode C(0700); snapshot files get mode C(0600), since
        they hold the service's data.
      - Keep it on a different file system from the database if you can, so a full data disk
        cannot also take the backups.
    type: path
    required: true
  snapshot_id:
    description:
      - The snapshot to take, verify, restore or delete; it names the directory under O(dest).
      - Up to 100 letters, digits, C(.), C(_) and C(-), starting with a letter or digit.
      - With O(state=present) it defaults to the UTC time plus a random token,
        e.g. C(20261122T020304Z-1a2b3c) (a new one on every run, also in check mode). Give one,
        e.g. the release id, to make the task idempotent.
      - Required with O(state=verified), O(state=restored) and O(state=absent).
    type: str
  release_id:
    description:
      - The release this snapshot belongs to; recorded in the manifest so a rollback can find the
        snapshot taken before its release.
    type: str
  revision:
    description:
      - The schema revision (Alembic revision, Django migration) at snapshot time; recorded in
        the manifest so a restore knows which code version matches the data.
      - With O(engine=postgresql) and no O(revision), it is read from the database, from the
        C(alembic_version) table, else as the last applied migration of each app in
        C(django_migrations) (V(app.name), comma-separated); none when it has neither.
    type: str
  database:
    description:
      - The PostgreSQL database to dump. Required with O(engine=postgresql) and O(state=present).
      - With O(state=restored), the live database to restore next to (and, with O(swap), to
        replace); defaults to the database recorded in the manifest.
    type: str
  maintenance_db:
    description:
      - The PostgreSQL database to connect to for creating, renaming and dropping databases
        during a restore.
    type: str
    default: postgres
  login_user:
    description:
      - The PostgreSQL role to connect as. Omit it to use the role named like the OS user, e.g.
        with C(become_user=postgres) and peer authentication over the local socket.
      - Dumping needs read access to every object; a restore needs to create databases and own
        (or be superuser over) the restored objects, and O(swap) needs to rename databases and
        terminate other sessions, in practice a superuser.
    type: str
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server, or the directory of its Unix socket.
        Omit it to use the local socket.
    type: str
  login_port:
    description:
      - The PostgreSQL port (also used to name the local socket).
    type: int
  login_password:
    description:
      - Password for O(login_user). It is passed to the PostgreSQL tools in the environment
        (C(PGPASSWORD)), never on a command line. A C(~/.pgpass) file works too.
    type: str
  pg_format:
    description:
      - V(custom) (C(pg_dump -Fc)) writes one compressed file, C(database.dump).
      - V(directory) (C(pg_dump -Fd)) writes a directory, C(database.dir), one file per table,
        and can dump with O(jobs) parallel connections; worth it for large databases.
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description:
      - Parallel jobs for C(pg_dump) (directory format only) and for C(pg_restore) (both
        formats). Each job is one more connection to the server.
    type: int
    default: 1
  compress:
    description:
      - pg_dump's compression level (C(--compress)), 0 (none) to 9; omit it for pg_dump's
        default (gzip level 6 for both formats).
      - Compression costs CPU in the dump and in every read of it (verification, restore); a
        lower level trades disk space for time, which pays off on large databases when the
        host has few cores. bench/backup_restore.py measures both.
    type: int
  sqlite_path:
    description:
      - The live SQLite database file. Required with O(engine=sqlite) and O(state=present).
      - With O(state=restored) the live file to restore next to (and, with O(swap), to replace);
        defaults to the path recorded in the manifest. A symlink is resolved, so the file it
        points to is replaced.
    type: path
  paths:
    description:
      - Absolute files and directories to archive with O(engine=files). They are stored relative
        to C(/), so C(/etc/sampleapp) is extracted as C(<restore_target>/etc/sampleapp).
      - A file that changes while tar reads it fails the snapshot, because the archive would
        not hold a consistent copy of it.
    type: list
    elements: path
  keep:
    description:
      - With O(state=pruned), how many of the newest complete snapshots to keep (1 or more).
        Newest means the latest start time.
    type: int
  protect:
    description:
      - Snapshot ids that retention and O(state=absent) never delete, e.g. the snapshot of the
        last verified release, which a data rollback would need.
      - A protected snapshot among the newest O(keep) counts towards O(keep); an older one is
        kept in addition.
    type: list
    elements: str
    default: []
  verify:
    description:
      - With O(state=present), verify the snapshot before it is renamed into place, so a backup
        that cannot be read back is never kept.
    type: bool
    default: true
  restore_target:
    description:
      - With O(state=restored), where the snapshot is restored.
      - For PostgreSQL the name of the fresh database, default C(<database>_restore_<id>)
        (shortened to fit PostgreSQL's 63-byte names). It must not exist.
      - For SQLite the new file, default C(<sqlite_path>.restore-<id>). It must not exist and,
        with O(swap), must be in the directory of the live file.
      - For files the directory to extract into, required; it must be empty or missing.
    type: str
  swap:
    description:
      - With O(state=restored), put the restored data in place of the live data.
      - "PostgreSQL: the live database is closed to new connections, its sessions are terminated
        (C(pg_terminate_backend)), and in one transaction it is renamed to
        C(<database>_before_<id>) and the restored database is renamed to its name. If the swap
        fails the live database is left as it was and accepts connections again. Stop or pause
        the application first: its sessions are cut, and writes made to the live database after
        the snapshot stay only in C(<database>_before_<id>)."
      - "SQLite: the module refuses while any process has the live file open (it scans
        C(/proc), so run it as root), so stop the application first. It checkpoints the live
        file, keeps it as C(<sqlite_path>.before-<id>) (a hard link) and renames the restored file
        over it, with the owner and mode of the live file."
      - Not supported for O(engine=files).
    type: bool
    default: false
  encrypt_to:
    description:
      - With O(state=present), encrypt the snapshot to these C(age) recipients (public keys,
        C(age1...), or C(ssh-ed25519)/C(ssh-rsa) public keys). Any one of their identities can
        decrypt it. Empty writes a plain snapshot, readable only by its owner (modes 0700/0600).
      - A private key given here is refused without being shown.
      - Not with O(pg_format=directory), which writes a file per table.
    type: list
    elements: str
    default: []
  identity:
    description:
      - The content (not the path) of an C(age) identity file of one of the snapshot's
        recipients, needed to verify or restore an encrypted snapshot, and to verify one right
        after it is taken.
      - Sent to C(age) through a pipe; never written to disk, never logged.
    type: str
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - O(state=present) writes nothing; it checks that the source can be read and returns
        RV(estimated_size_bytes) (the database size for PostgreSQL, the file size for SQLite, the
        uncompressed size for files).
      - O(state=restored) verifies the snapshot (a read) and returns RV(restore), what would be
        created and replaced, without creating or renaming anything.
      - O(state=pruned) and O(state=absent) return RV(deleted), what would be deleted.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Runs on the database host for PostgreSQL and SQLite, and on the app hosts for files. It needs
    Python's C(sqlite3) module, C(tar) and C(gzip), and for PostgreSQL the client tools
    C(pg_dump), C(pg_restore) and C(psql) of the server's major version or newer
    (Debian C(postgresql-client)).
  - Encrypted snapshots need C(age) on the host (Debian package C(age)).
  - With C(become_user=postgres), O(dest) must be writable by C(postgres); create it first
    (see the examples).
  - "A PostgreSQL restore brings back what C(pg_dump) stores for one database: schema, data,
    ownership and privileges on objects. Roles, and the database's own C(GRANT)s and
    C(ALTER DATABASE ... SET) settings, are not part of the dump; the fresh database gets the
    owner, encoding and locale of the dumped one. After the restore the module runs C(ANALYZE)
    so the planner has statistics."
  - A SQLite snapshot holds the database in rollback-journal mode, so it is one self-contained
    file; a restore puts back the journal mode (e.g. WAL) the live database had.
  - "In rollback-journal (non-WAL) mode SQLite writers wait while the snapshot reads the database;
    in WAL mode they do not."
seealso:
  - name: pg_dump
    description: The formats and options of the PostgreSQL dump.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
  - name: SQLite online backup API
    description: How a live SQLite database is copied consistently.
    link: https://www.sqlite.org/backup.html
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Create the snapshot directory, writable by postgres
  ansible.builtin.file:
    path: /var/backups/bluegreen/sampleapp
    state: directory
    owner: postgres
    group: postgres
    mode: "0700"

- name: Snapshot the sampleapp database before migrating
  backup_snapshot:
    engine: postgresql
    database: sampleapp
    dest: /var/backups/bluegreen/sampleapp
    snapshot_id: "{{ release_id }}"
    release_id: "{{ release_id }}"
    revision: "{{ current_revision }}"
  become: true
  become_user: postgres
  register: sampleapp_snapshot

- name: Snapshot a large database over TCP, eight connections in parallel
  backup_snapshot:
    engine: postgresql
    database: sampleapp
    pg_format: directory
    jobs: 8
    login_host: db1.example.com
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    dest: /var/backups/bluegreen/sampleapp

- name: Snapshot the SQLite database while the service keeps running
  backup_snapshot:
    engine: sqlite
    sqlite_path: /srv/sampleapp/shared/db.sqlite3
    dest: /var/backups/bluegreen/sampleapp
    release_id: "{{ release_id }}"
    revision: "{{ current_revision }}"
  become: true

- name: Snapshot the configuration and uploaded media
  backup_snapshot:
    engine: files
    paths:
      - /etc/sampleapp
      - /srv/sampleapp/shared/media
    dest: /var/backups/bluegreen/sampleapp-files
  become: true

- name: Verify the snapshot again before the data rollback
  backup_snapshot:
    state: verified
    dest: /var/backups/bluegreen/sampleapp
    snapshot_id: "{{ sampleapp_snapshot.snapshot_id }}"
  become: true
  become_user: postgres

- name: Restore it into a fresh database and put that in place of the live one
  backup_snapshot:
    state: restored
    dest: /var/backups/bluegreen/sampleapp
    snapshot_id: "{{ sampleapp_snapshot.snapshot_id }}"
    swap: true
    jobs: 4
  become: true
  become_user: postgres
  register: sampleapp_restore

- name: Snapshot, encrypted to the operations team's two keys, and verify it decrypting
  backup_snapshot:
    engine: postgresql
    database: sampleapp
    dest: /var/backups/bluegreen/sampleapp
    encrypt_to:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      - age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg
    identity: "{{ vault_backup_age_identity }}"
  become: true
  become_user: postgres

- name: Keep the ten newest snapshots, and always the one of the last verified release
  backup_snapshot:
    state: pruned
    dest: /var/backups/bluegreen/sampleapp
    keep: 10
    protect:
      - "{{ last_verified_release_id }}"
  become: true

- name: List the snapshots
  backup_snapshot:
    state: info
    dest: /var/backups/bluegreen/sampleapp
  register: sampleapp_snapshots
"""

RETURN = r"""
msg:
  description: One line saying what was done (or would be done in check mode).
  returned: always
  type: str
  sample: took snapshot 20261122T020304Z-1a2b3c of sqlite /srv/sampleapp/db.sqlite3 (8192 bytes)
    and verified it
snapshot_id:
  description: The snapshot taken, verified, restored or deleted.
  returned: when state is present, verified, restored or absent
  type: str
  sample: 20261122T020304Z-1a2b3c
path:
  description: The snapshot directory (in check mode with O(state=present), the one it would be).
  returned: when state is present, verified, restored or absent
  type: str
  sample: /var/backups/bluegreen/sampleapp/20261122T020304Z-1a2b3c
manifest:
  description:
    - The snapshot's C(manifest.json); V(null) in check mode with O(state=present).
    - C(files) lists C(path), C(size) and C(sha256) of every file; C(tables) (SQLite) the row
      count per table at snapshot time; C(members) (files) the number of archive entries;
      C(source) what was backed up (for PostgreSQL the connection and the database's owner,
      encoding and locale; for SQLite the path, journal mode, owner and mode).
  returned: when state is present, verified or restored
  type: dict
  sample:
    format: 1
    snapshot_id: 20261122T020304Z-1a2b3c
    engine: sqlite
    complete: true
    started: "2026-11-22T02:03:04.120933Z"
    finished: "2026-11-22T02:03:04.188101Z"
    duration_s: 0.067
    host: db1
    release_id: 20261122T020300-ab12
    revision: 3f2a9c1d
    database: null
    source: {path: /srv/sampleapp/db.sqlite3, journal_mode: wal, uid: 999, gid: 999, mode: "0640"}
    artifact: database.sqlite3
    files: [{path: database.sqlite3, size: 8192, sha256: 9f86d08...}]
    size_bytes: 8192
    tables: {orders: 1200, users: 40}
    tool_versions: {sqlite: 3.40.1, python: 3.11.2}
verified:
  description: Whether the snapshot was verified by this task (and passed).
  returned: when state is present, verified or restored
  type: bool
  sample: true
checks:
  description: What verification read and found, one line per check; evidence for the report.
  returned: when state is present, verified or restored
  type: list
  elements: str
  sample:
    - sha256 and size of 1 file(s) match the manifest (8192 bytes)
    - "database.sqlite3: PRAGMA integrity_check: ok"
    - "database.sqlite3: row counts of 2 table(s) match the manifest"
size_bytes:
  description: Total size of the snapshot's files; V(null) in check mode with O(state=present).
  returned: when state is present, verified or restored
  type: int
  sample: 8192
estimated_size_bytes:
  description:
    - In check mode with O(state=present), how big the source is (PostgreSQL C(pg_database_size),
      SQLite file plus WAL, files uncompressed). The snapshot is usually smaller.
  returned: when state is present, in check mode
  type: int
  sample: 1048576
duration_s:
  description: Seconds the task took (taking and verifying, verifying, restoring, ...).
  returned: always
  type: float
  sample: 1.42
restore:
  description: What the restore wrote and replaced (in check mode, would write and replace).
  returned: when state is restored
  type: dict
  contains:
    engine:
      description: The snapshot's engine.
      type: str
    target:
      description: The fresh database, new SQLite file or directory the snapshot was restored into.
      type: str
    live:
      description: The live database or file (V(/) for files).
      type: str
    swap:
      description: Whether the restored data was put in place of the live data.
      type: bool
    kept_as:
      description:
        - Where the previous live data is kept after the swap (C(<database>_before_<id>),
          C(<path>.before-<id>)); V(null) without swap or when there was no live data.
      type: str
    terminated_sessions:
      description: PostgreSQL sessions on the live database that the swap terminated.
      type: int
  sample:
    engine: postgresql
    target: sampleapp
    live: sampleapp
    swap: true
    kept_as: sampleapp_before_20261122t020304z_1a2b3c
    terminated_sessions: 4
deleted:
  description: Snapshot ids deleted (in check mode, that would be deleted), newest first.
  returned: when state is absent or pruned
  type: list
  elements: str
  sample: [20261101T020304Z-77aa01]
kept:
  description: Complete snapshot ids retention keeps, newest first.
  returned: when state is pruned
  type: list
  elements: str
  sample: [20261122T020304Z-1a2b3c, 20261115T020304Z-5e6f70]
deleted_partials:
  description: Partial directories (of runs that died) removed because nothing wrote to them for
    an hour.
  returned: when state is pruned
  type: list
  elements: str
  sample: [.20261121T020304Z-0b0b0b.partial]
snapshots:
  description:
    - The complete snapshots under O(dest), newest first (only O(snapshot_id) if given).
    - C(checksum) is the sha256 of a one-file snapshot (what C(sha256sum) prints), or for a
      directory dump the sha256 of its sorted C(<sha256>  <path>) lines.
    - C(verified) is V(true) when the snapshot was read back before it was kept (O(verify)),
      V(false) when it was kept unverified, V(null) for snapshots older than this field.
  returned: when state is info
  type: list
  elements: dict
  sample:
    - snapshot_id: 20261122T020304Z-1a2b3c
      path: /var/backups/bluegreen/sampleapp/20261122T020304Z-1a2b3c
      engine: postgresql
      started: "2026-11-22T02:03:04.120933Z"
      finished: "2026-11-22T02:03:09.501223Z"
      duration_s: 5.38
      size_bytes: 10485760
      release_id: 20261122T020300-ab12
      revision: 3f2a9c1d
      database: sampleapp
      checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      verified: true
ignored:
  description: Directories under O(dest) that are not complete snapshots (partial, no or broken
    manifest), with the reason; retention leaves them alone, except stale partial directories.
  returned: when state is pruned or info
  type: list
  elements: dict
  sample: [{path: /var/backups/bluegreen/sampleapp/old, reason: no manifest.json}]
cmd:
  description: The command that failed.
  returned: when a command failed
  type: list
  elements: str
  sample: [pg_dump, --no-password, --format=custom, --file, /var/backups/x/database.dump]
rc:
  description: Exit code of the command that failed.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the command that failed.
  returned: when a command failed
  type: str
  sample: "pg_dump: error: could not write to output file: No space left on device"
"""

import errno
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ansible.module_utils.backup_encryption import (
    encryption_record,
    is_encrypted,
    missing_identity_message,
    secret_looking,
)
from ansible.module_utils.backup_snapshot import (
    DATABASE_PROPERTIES_SQL,
    ENGINES,
    MANIFEST_NAME,
    MIGRATION_TABLES_SQL,
    PG_FORMATS,
    STATES,
    UTC,
    FileEntry,
    FileState,
    Request,
    RestorePlan,
    SnapshotError,
    SnapshotSummary,
    allow_connections_sql,
    artifact_name,
    build_manifest,
    build_request,
    checksum_problems,
    count_sessions_sql,
    create_database_sql,
    database_properties,
    file_entries,
    first_line,
    format_utc,
    generate_snapshot_id,
    integrity_problems,
    is_partial_dir_name,
    manifest_problems,
    partial_dir_name,
    pg_restore_plan,
    retention_plan,
    revision_query,
    row_count_problems,
    sqlite_restore_plan,
    stale_partials,
    summarise,
    swap_sql,
    tar_members,
    terminate_sessions_sql,
    toc_entry_count,
    unexpected_files,
    validate_manifest,
    verification_failed_message,
)
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.file_system import make_directories
from ansible.module_utils.postgresql_access import (
    PgConnection,
    client_command,
    client_environment,
    psql_command,
    quote_ident,
    quote_literal,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    state=dict(type="str", default="present", choices=list(STATES)),
    engine=dict(type="str", choices=list(ENGINES)),
    dest=dict(type="path", required=True),
    snapshot_id=dict(type="str"),
    release_id=dict(type="str"),
    revision=dict(type="str"),
    database=dict(type="str"),
    maintenance_db=dict(type="str", default="postgres"),
    login_user=dict(type="str"),
    login_host=dict(type="str"),
    login_port=dict(type="int"),
    login_password=dict(type="str", no_log=True),
    pg_format=dict(type="str", default="custom", choices=list(PG_FORMATS)),
    jobs=dict(type="int", default=1),
    compress=dict(type="int"),
    sqlite_path=dict(type="path"),
    paths=dict(type="list", elements="path"),
    keep=dict(type="int"),
    protect=dict(type="list", elements="str", default=[]),
    verify=dict(type="bool", default=True),
    restore_target=dict(type="str"),
    swap=dict(type="bool", default=False),
    encrypt_to=dict(type="list", elements="str", default=[]),
    identity=dict(type="str", no_log=True),
)
REQUIRED_IF = [
    ("state", "present", ("engine",)),
    ("state", "verified", ("snapshot_id",)),
    ("state", "restored", ("snapshot_id",)),
    ("state", "absent", ("snapshot_id",)),
    ("state", "pruned", ("keep",)),
]
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
HASH_CHUNK_BYTES = 1 << 20
# How long a SQLite connection waits for a lock before giving up (busy_timeout).
SQLITE_BUSY_TIMEOUT = 60.0
# How long a swap waits for terminated PostgreSQL sessions to go away.
SESSION_EXIT_TIMEOUT = 30.0
SESSION_POLL_INTERVAL = 0.2
# What pg_stat_activity shows for the sessions of this module.
APPLICATION_NAME = "bluegreen backup_snapshot"
PACKAGE_HINTS = {
    "pg_dump": "postgresql-client",
    "pg_restore": "postgresql-client",
    "psql": "postgresql-client",
    "tar": "tar",
    "gzip": "gzip",
    "age": "age",
}


@dataclass(frozen=True)
class Capture:
    """What an engine wrote into the partial directory, for the manifest."""

    artifact: str
    source: dict[str, Any]
    tool_versions: dict[str, str]
    database: str | None = None
    tables: dict[str, int] | None = None
    members: int | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Listing:
    """What is under dest: complete snapshots, partial directories, and everything else."""

    snapshots: list[SnapshotSummary]
    partials: dict[str, float]
    ignored: list[dict[str, str]]


# Commands


def tool(module: AnsibleModule, name: str) -> str:
    path = module.get_bin_path(name)
    if path is None:
        raise SnapshotError(
            f"{name} was not found on {socket.gethostname()} (searched PATH and sbin "
            f"directories): install {PACKAGE_HINTS.get(name, name)} there and run again"
        )
    return path


def run(
    module: AnsibleModule,
    args: list[str],
    what: str,
    *,
    advice: str = "",
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> str:
    """Run `args`; its stdout, or SnapshotError with the command's stderr and `advice`.
    `pass_fds` are the pipe ends an encrypted snapshot's /dev/fd/N path names."""
    try:
        rc, stdout, stderr = module.run_command(
            args, environ_update=env or {}, handle_exceptions=False, pass_fds=pass_fds or None
        )
    except OSError as exc:
        raise SnapshotError(f"{what}: cannot run {args[0]}: {exc}", cmd=args) from exc
    if rc != 0:
        error = stderr.strip() or stdout.strip() or "no error output"
        raise SnapshotError(
            f"{what} failed (exit {rc}): {error}" + (f"; {advice}" if advice else ""),
            cmd=args,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    return stdout


# Encryption (age): plaintext only ever in pipes and memory


def identity_pipe(identity: str) -> int:
    """The read end of a pipe holding `identity`, which age reads as /dev/fd/N: no file."""
    read_fd, write_fd = os.pipe()
    try:
        # Shorter than a pipe's buffer (build_request refuses longer), so this never blocks.
        os.write(write_fd, identity.encode())
    finally:
        os.close(write_fd)
    return read_fd


def age_error(what: str, rc: int, stderr: bytes) -> SnapshotError:
    error = stderr.decode(errors="replace").strip() or "no error output"
    return SnapshotError(
        f"{what} failed (exit {rc}): {error}; the ciphertext is damaged, truncated, or not "
        "for this identity",
        rc=rc,
    )


@dataclass(frozen=True)
class Output:
    """Where a tool writes an artifact, and the descriptors it must inherit to do so."""

    path: str
    pass_fds: tuple[int, ...] = ()


@contextmanager
def encrypting_sink(
    module: AnsibleModule, recipients: tuple[str, ...], target: str
) -> Iterator[Output]:
    """Plaintext written to the yielded path (/dev/fd/N of a pipe) reaches `target` only
    as `age --encrypt`'s ciphertext."""
    args = [tool(module, "age"), "--encrypt", "--output", target]
    for recipient in recipients:
        args += ["--recipient", recipient]
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            args, stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    except OSError:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    try:
        yield Output(f"/dev/fd/{write_fd}", (write_fd,))
    finally:
        os.close(write_fd)
        stderr = process.communicate()[1]
    if process.returncode != 0:
        raise age_error(f"age --encrypt into {target}", process.returncode, stderr)


@contextmanager
def artifact_output(module: AnsibleModule, request: Request, target: str) -> Iterator[Output]:
    """Where a tool writes the artifact: `target` itself, or with encrypt_to a pipe into age."""
    if not request.encrypt_to:
        yield Output(target)
        return
    with encrypting_sink(module, request.encrypt_to, target) as sink:
        yield sink


def encryption_versions(module: AnsibleModule, request: Request) -> dict[str, str]:
    return {"age": version_of(module, tool(module, "age"))} if request.encrypt_to else {}


def identity_for(manifest: dict[str, Any], identity: str | None) -> str | None:
    """The identity an encrypted snapshot needs (SnapshotError without one); None if plain."""
    if not is_encrypted(manifest):
        return None
    if identity is None:
        raise SnapshotError(missing_identity_message(manifest["snapshot_id"], manifest))
    return identity


def sqlite_snapshot_connection(
    module: AnsibleModule, path: str, identity: str | None
) -> sqlite3.Connection:
    """The snapshot file opened read-only, or its decrypted copy in memory."""
    if identity is None:
        return sqlite3.connect(sqlite_uri(path, immutable=True), uri=True)
    connection = sqlite3.connect(":memory:")
    connection.deserialize(decrypted_bytes(module, identity, path))
    return connection


def encrypt_bytes(
    module: AnsibleModule, recipients: tuple[str, ...], data: bytes, target: str
) -> None:
    with encrypting_sink(module, recipients, target) as sink, open(sink.path, "wb") as handle:
        handle.write(data)


def decrypt_command(module: AnsibleModule, key_fd: int, path: str) -> list[str]:
    return [tool(module, "age"), "--decrypt", "--identity", f"/dev/fd/{key_fd}", path]


def decrypted_bytes(module: AnsibleModule, identity: str, path: str) -> bytes:
    """The whole plaintext of `path`, in memory (a SQLite snapshot is read this way)."""
    key_fd = identity_pipe(identity)
    try:
        done = subprocess.run(
            decrypt_command(module, key_fd, path),
            capture_output=True,
            pass_fds=(key_fd,),
            check=False,
        )
    finally:
        os.close(key_fd)
    if done.returncode != 0:
        raise age_error(f"{os.path.basename(path)}: age --decrypt", done.returncode, done.stderr)
    return done.stdout


def pump(source: Any, sink: Any, spilled: list[int]) -> None:
    """Copy `source` into `sink`; once the sink is closed, read the rest of `source` anyway,
    so age authenticates every chunk to the end."""
    while chunk := source.read(HASH_CHUNK_BYTES):
        if sink is not None:
            try:
                sink.write(chunk)
            except (BrokenPipeError, ValueError):
                sink = None
                spilled.append(len(chunk))
        else:
            spilled.append(len(chunk))
    if sink is not None:
        with suppress(BrokenPipeError):
            sink.close()


def run_decrypted(
    module: AnsibleModule,
    identity: str,
    path: str,
    args: list[str],
    what: str,
    *,
    env: dict[str, str] | None = None,
) -> str:
    """Run `args` with the plaintext of `path` on its standard input; its stdout.

    age always decrypts to the end (what the command does not read is discarded), so a
    pass succeeds only when every byte of the ciphertext is authentic."""
    key_fd = identity_pipe(identity)
    try:
        age = subprocess.Popen(
            decrypt_command(module, key_fd, path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(key_fd,),
        )
    finally:
        os.close(key_fd)
    try:
        command = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        age.kill()
        age.communicate()
        raise SnapshotError(f"{what}: cannot run {args[0]}: {exc}", cmd=args) from exc
    spilled: list[int] = []
    outputs: dict[str, bytes] = {}
    threads = [
        threading.Thread(target=pump, args=(age.stdout, command.stdin, spilled)),
        threading.Thread(target=lambda: outputs.update(out=command.stdout.read())),
        threading.Thread(target=lambda: outputs.update(err=command.stderr.read())),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    command.wait()
    stdout, stderr = outputs["out"], outputs["err"]
    age_stderr = age.communicate()[1]
    if age.returncode != 0:
        raise age_error(f"{what}: age --decrypt", age.returncode, age_stderr)
    if command.returncode != 0:
        error = stderr.decode(errors="replace").strip() or "no error output"
        raise SnapshotError(
            f"{what} failed (exit {command.returncode}): {error}", cmd=args, rc=command.returncode
        )
    return stdout.decode(errors="replace")


def version_of(module: AnsibleModule, binary: str) -> str:
    return first_line(run(module, [binary, "--version"], f"{binary} --version"))


def psql(module: AnsibleModule, connection: PgConnection, database: str, sql: str) -> str:
    """Run `sql` in `database`; unaligned tuples only, stopping at the first error."""
    return run(
        module,
        psql_command(tool(module, "psql"), connection, database, sql),
        f"psql on database {database}",
        advice="check login_user/login_host/login_port (or become_user: postgres) and that the "
        "role may do this",
        env=client_environment(connection, APPLICATION_NAME),
    ).strip()


# Files


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def relative_files(directory: str) -> list[str]:
    """Every regular file under `directory` except the manifest, as sorted relative paths."""
    found = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, directory).replace(os.sep, "/"))
    return sorted(path for path in found if path != MANIFEST_NAME)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(directory: str) -> list[FileEntry]:
    """Size and sha256 of every file, each flushed to disk first so the rename is durable."""
    entries = []
    for relative in relative_files(directory):
        path = os.path.join(directory, relative)
        fsync_path(path)
        entries.append(FileEntry(relative, os.path.getsize(path), sha256_of(path)))
    return entries


def observe_files(directory: str, expected: list[FileEntry]) -> dict[str, FileState | None]:
    """What is on disk for each manifest entry; hashed only when the size matches."""
    observed: dict[str, FileState | None] = {}
    for entry in expected:
        path = os.path.join(directory, entry.path)
        if not os.path.isfile(path):
            observed[entry.path] = None
            continue
        size = os.path.getsize(path)
        observed[entry.path] = FileState(size, sha256_of(path) if size == entry.size else None)
    return observed


def restrict_permissions(directory: str) -> None:
    for root, dirs, names in os.walk(directory):
        os.chmod(root, DIRECTORY_MODE)
        for name in names:
            os.chmod(os.path.join(root, name), FILE_MODE)
        for name in dirs:
            os.chmod(os.path.join(root, name), DIRECTORY_MODE)


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    path = os.path.join(directory, MANIFEST_NAME)
    temp_path = path + ".tmp"
    with open(temp_path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp_path, FILE_MODE)
    os.replace(temp_path, path)


def remove_tree(path: str) -> str | None:
    """Remove `path` (a directory or file); the error text if that failed."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    return None


def last_written(directory: str) -> float:
    """The newest mtime of `directory` and anything in it."""
    newest = os.lstat(directory).st_mtime
    for root, _dirs, names in os.walk(directory):
        for name in [*names, *_dirs]:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue
    return newest


def load_manifest(snapshot_dir: str, snapshot_id: str) -> dict[str, Any]:
    path = os.path.join(snapshot_dir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise SnapshotError(
            f"{snapshot_dir} has no {MANIFEST_NAME}, so nothing says what it should contain: it "
            "is not a snapshot this module took; move it out of dest",
            verified=False,
        ) from exc
    except OSError as exc:
        raise SnapshotError(
            f"could not read {path}: {exc.strerror or exc}; run the task as the user that owns "
            "the snapshots (become/become_user)"
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SnapshotError(
            f"{path} is not valid JSON ({exc}): the manifest is damaged, so the snapshot cannot "
            "be trusted; take a new snapshot (state=present)",
            verified=False,
        ) from exc
    return validate_manifest(data, path, snapshot_id)


def find_snapshot(dest: str, snapshot_id: str) -> tuple[str, dict[str, Any]]:
    snapshot_dir = os.path.join(dest, snapshot_id)
    if not os.path.isdir(snapshot_dir):
        partial = os.path.join(dest, partial_dir_name(snapshot_id))
        hint = (
            f" ({partial} exists: that snapshot was never completed)"
            if os.path.exists(partial)
            else ""
        )
        raise SnapshotError(
            f"there is no snapshot {snapshot_id} in {dest}{hint}: list the snapshots with "
            "state=info and pick one"
        )
    return snapshot_dir, load_manifest(snapshot_dir, snapshot_id)


def scan(dest: str) -> Listing:
    """Everything under dest: complete snapshots, partial directories, anything else."""
    listing = Listing(snapshots=[], partials={}, ignored=[])
    if not os.path.isdir(dest):
        return listing
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if not os.path.isdir(path) or os.path.islink(path):
            listing.ignored.append({"path": path, "reason": "not a directory"})
        elif is_partial_dir_name(name):
            listing.partials[name] = last_written(path)
            written = format_utc(datetime.fromtimestamp(listing.partials[name], UTC))
            listing.ignored.append(
                {
                    "path": path,
                    "reason": f"partial snapshot, being written or left by a run that died "
                    f"(last written {written})",
                }
            )
        else:
            try:
                manifest = load_manifest(path, name)
            except SnapshotError as exc:
                listing.ignored.append({"path": path, "reason": str(exc)})
                continue
            listing.snapshots.append(summarise(manifest, path))
    return listing


# SQLite


def sqlite_uri(path: str, *, immutable: bool = False) -> str:
    return f"file:{quote(path)}?mode=ro" + ("&immutable=1" if immutable else "")


def table_row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
        )
    ]
    return {
        name: connection.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()[0]
        for name in names
    }


def sqlite_copy(source: sqlite3.Connection, target_path: str) -> None:
    """Copy the whole database in one backup step, inside the source's read transaction."""
    target = sqlite3.connect(target_path, isolation_level=None)
    try:
        source.backup(target)
        # A snapshot is one self-contained file: no -wal to go with it.
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()


def sqlite_image(source: sqlite3.Connection) -> bytes:
    """The whole database as one file's bytes, copied in memory in one backup step."""
    memory = sqlite3.connect(":memory:")
    try:
        source.backup(memory)
        image = bytearray(memory.serialize())
    finally:
        memory.close()
    # The copy keeps a WAL source's file format versions (2, 2), which a database opened
    # from memory cannot read: 1, 1 is rollback-journal mode, what PRAGMA journal_mode=DELETE
    # writes to a file's header (sqlite.org/fileformat.html, offsets 18 and 19).
    image[18:20] = b"\x01\x01"
    return bytes(image)


def capture_sqlite(module: AnsibleModule, request: Request, partial: str) -> Capture:
    path = request.sqlite_path
    assert path is not None
    if not os.path.isfile(path):
        raise SnapshotError(
            f"sqlite_path {path} does not exist or is not a file: give the path of the live "
            "database file (the DATABASE_URL of the service)"
        )
    info = os.stat(path)
    artifact = artifact_name("sqlite", encrypted=bool(request.encrypt_to))
    source = sqlite3.connect(
        sqlite_uri(path), uri=True, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None
    )
    try:
        source.execute("BEGIN")
        # Counted inside the same read transaction the backup copies, so they describe the copy.
        tables = table_row_counts(source)
        journal_mode = source.execute("PRAGMA journal_mode").fetchone()[0]
        if request.encrypt_to:
            # The copy stays in memory: only its ciphertext reaches the disk.
            encrypt_bytes(
                module, request.encrypt_to, sqlite_image(source), os.path.join(partial, artifact)
            )
        else:
            sqlite_copy(source, os.path.join(partial, artifact))
        source.execute("COMMIT")
    finally:
        source.close()
    return Capture(
        artifact=artifact,
        source={
            "path": path,
            "journal_mode": journal_mode,
            "uid": info.st_uid,
            "gid": info.st_gid,
            "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        },
        tool_versions={
            "sqlite": sqlite3.sqlite_version,
            "python": sys.version.split()[0],
            **encryption_versions(module, request),
        },
        tables=tables,
    )


def sqlite_read_problems(
    connection: sqlite3.Connection, label: str, tables: dict[str, int]
) -> tuple[list[str], list[str]]:
    """Integrity check and row counts of an open database; (problems, checks)."""
    try:
        rows = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        problems = integrity_problems(rows, label)
        if problems:
            return problems, []
        counts = table_row_counts(connection)
    except sqlite3.DatabaseError as exc:
        return [f"{label}: SQLite cannot read it: {exc}"], []
    problems = row_count_problems(tables, counts, label)
    checks = [
        f"{label}: PRAGMA integrity_check: ok",
        f"{label}: row counts of {len(counts)} table(s) match the manifest",
    ]
    return problems, ([] if problems else checks)


def verify_sqlite(
    module: AnsibleModule, directory: str, manifest: dict[str, Any], identity: str | None
) -> tuple[list[str], list[str]]:
    artifact = manifest["artifact"]
    try:
        connection = sqlite_snapshot_connection(module, os.path.join(directory, artifact), identity)
    except SnapshotError as exc:
        return [str(exc)], []
    try:
        problems, checks = sqlite_read_problems(connection, artifact, manifest["tables"])
    finally:
        connection.close()
    return problems, (decrypted_check(artifact, identity) + checks if checks else checks)


def decrypted_check(artifact: str, identity: str | None) -> list[str]:
    if identity is None:
        return []
    return [f"{artifact}: age decrypted and authenticated every byte with the given identity"]


# Files (tar)


def capture_files(module: AnsibleModule, request: Request, partial: str) -> Capture:
    members = tar_members(request.paths)
    missing = [path for path in request.paths if not os.path.lexists(path)]
    if missing:
        raise SnapshotError(
            f"paths {', '.join(missing)} do not exist: fix the list (absolute paths of the "
            "service's files and configuration)"
        )
    tar = tool(module, "tar")
    artifact = artifact_name("files", encrypted=bool(request.encrypt_to))
    archive = os.path.join(partial, artifact)
    with artifact_output(module, request, archive) as output:
        # Encrypted, the archive cannot be read back without the identity: tar names each
        # member as it writes it instead.
        verbose = ["--verbose"] if request.encrypt_to else []
        written = run(
            module,
            [
                tar,
                "--create",
                *verbose,
                "--gzip",
                "--file",
                output.path,
                "--directory",
                "/",
                "--",
                *members,
            ],
            f"tar of {', '.join(request.paths)}",
            advice="a file that changed while tar read it makes the archive inconsistent: stop "
            "what writes to it, or run again",
            pass_fds=output.pass_fds,
        )
    listing = (
        written
        if request.encrypt_to
        else run(module, [tar, "--list", "--gzip", "--file", archive], f"tar --list {archive}")
    )
    return Capture(
        artifact=artifact,
        source={"paths": list(request.paths)},
        tool_versions={
            "tar": version_of(module, tar),
            "gzip": version_of(module, tool(module, "gzip")),
            **encryption_versions(module, request),
        },
        members=len(listing.splitlines()),
    )


def verify_files(
    module: AnsibleModule, directory: str, manifest: dict[str, Any], identity: str | None
) -> tuple[list[str], list[str]]:
    artifact = manifest["artifact"]
    path = os.path.join(directory, artifact)
    try:
        if identity is None:
            args = [tool(module, "tar"), "--list", "--gzip", "--file", path]
            listing = run(module, args, f"{artifact}: tar --list")
        else:
            args = [tool(module, "tar"), "--list", "--gzip", "--file", "-"]
            listing = run_decrypted(module, identity, path, args, f"{artifact}: tar --list")
    except SnapshotError as exc:
        return [str(exc)], []
    members = len(listing.splitlines())
    if members != manifest["members"]:
        return [
            f"{artifact}: has {members} entries but the manifest records {manifest['members']}"
        ], []
    return [], [
        *decrypted_check(artifact, identity),
        f"{artifact}: tar --list read the whole archive, {members} entries as recorded",
    ]


# PostgreSQL


def pg_properties(module: AnsibleModule, connection: PgConnection, database: str) -> dict[str, Any]:
    text = psql(module, connection, database, DATABASE_PROPERTIES_SQL)
    try:
        return database_properties(json.loads(text))
    except ValueError as exc:
        raise SnapshotError(
            f"unexpected answer from PostgreSQL about {database}: {text!r}"
        ) from exc


def pg_revision(module: AnsibleModule, connection: PgConnection, database: str) -> str | None:
    """The schema revision the database records (Alembic or Django), None without one."""
    query = revision_query(psql(module, connection, database, MIGRATION_TABLES_SQL))
    return (psql(module, connection, database, query) or None) if query else None


def capture_postgresql(module: AnsibleModule, request: Request, partial: str) -> Capture:
    database = request.database
    assert database is not None
    properties = pg_properties(module, request.pg, database)
    revision = request.revision or pg_revision(module, request.pg, database)
    pg_dump = tool(module, "pg_dump")
    artifact = artifact_name("postgresql", request.pg_format, encrypted=bool(request.encrypt_to))
    with artifact_output(module, request, os.path.join(partial, artifact)) as output:
        options = [f"--format={request.pg_format}", "--file", output.path]
        if request.pg_format == "directory":
            options += ["--jobs", str(request.jobs)]
        if request.compress is not None:
            options += ["--compress", str(request.compress)]
        if request.encrypt_to:
            # A pipe cannot be fsynced; the ciphertext age writes is, with every file.
            options.append("--no-sync")
        run(
            module,
            client_command(pg_dump, request.pg, database, *options),
            f"pg_dump of database {database}",
            advice="fix the cause above (connection, permissions, disk space) and run again",
            env=client_environment(request.pg, APPLICATION_NAME),
            pass_fds=output.pass_fds,
        )
    return Capture(
        artifact=artifact,
        database=database,
        source={
            "format": request.pg_format,
            "host": request.pg.host,
            "port": request.pg.port,
            "user": request.pg.user,
            "properties": properties,
        },
        tool_versions={
            "pg_dump": version_of(module, pg_dump),
            "pg_restore": version_of(module, tool(module, "pg_restore")),
            "server": str(properties.get("server_version")),
            **encryption_versions(module, request),
        },
        revision=revision,
    )


def verify_postgresql(
    module: AnsibleModule, directory: str, manifest: dict[str, Any], identity: str | None
) -> tuple[list[str], list[str]]:
    artifact = manifest["artifact"]
    path = os.path.join(directory, artifact)
    pg_restore = tool(module, "pg_restore")
    try:
        if identity is None:
            listing = run(module, [pg_restore, "--list", path], f"{artifact}: pg_restore --list")
            run(
                module,
                [pg_restore, "--file", os.devnull, path],
                f"{artifact}: pg_restore -f /dev/null",
            )
        else:
            listing = run_decrypted(
                module, identity, path, [pg_restore, "--list"], f"{artifact}: pg_restore --list"
            )
            run_decrypted(
                module,
                identity,
                path,
                [pg_restore, "--file", os.devnull],
                f"{artifact}: pg_restore -f /dev/null",
            )
    except SnapshotError as exc:
        return [str(exc)], []
    return [], [
        *decrypted_check(artifact, identity),
        f"{artifact}: pg_restore --list read the table of contents, "
        f"{toc_entry_count(listing)} entries",
        f"{artifact}: pg_restore -f /dev/null read and decoded the whole archive",
    ]


# Verification


def verify_snapshot(
    module: AnsibleModule,
    directory: str,
    manifest: dict[str, Any],
    location: str,
    identity: str | None,
) -> list[str]:
    """Read the snapshot back; the checks that passed, or SnapshotError naming what failed."""
    key = identity_for(manifest, identity)
    expected = file_entries(manifest)
    problems = checksum_problems(expected, observe_files(directory, expected))
    checks: list[str] = []
    if not problems:
        checks.append(
            f"sha256 and size of {len(expected)} file(s) match the manifest "
            f"({manifest['size_bytes']} bytes)"
        )
        engine = manifest["engine"]
        if engine == "postgresql":
            problems, engine_checks = verify_postgresql(module, directory, manifest, key)
        elif engine == "sqlite":
            problems, engine_checks = verify_sqlite(module, directory, manifest, key)
        else:
            problems, engine_checks = verify_files(module, directory, manifest, key)
        checks += engine_checks
    if problems:
        raise SnapshotError(
            verification_failed_message(manifest["snapshot_id"], location, problems),
            verified=False,
            snapshot_id=manifest["snapshot_id"],
            path=location,
            checks=checks,
        )
    extra = unexpected_files(expected, relative_files(directory))
    if extra:
        module.warn(
            f"{location} holds files the manifest does not list, which a restore ignores: "
            f"{', '.join(extra)}"
        )
    return checks


# present


def capture(
    module: AnsibleModule, request: Request, snapshot_id: str, partial: str
) -> tuple[dict[str, Any], list[str]]:
    """Write, hash, record and (optionally) verify the snapshot inside `partial`."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    engine = request.engine
    assert engine is not None
    common = dict(
        snapshot_id=snapshot_id,
        engine=engine,
        started=format_utc(started_at),
        host=socket.gethostname(),
        release_id=request.release_id,
        revision=request.revision,
    )
    write_manifest(
        partial,
        build_manifest(
            **common,
            complete=False,
            finished=None,
            duration_s=None,
            database=request.database,
            source={},
            artifact=artifact_name(engine, request.pg_format, encrypted=bool(request.encrypt_to)),
            files=[],
            tool_versions={},
        ),
    )
    if engine == "postgresql":
        taken = capture_postgresql(module, request, partial)
    elif engine == "sqlite":
        taken = capture_sqlite(module, request, partial)
    else:
        taken = capture_files(module, request, partial)
    restrict_permissions(partial)
    files = hash_files(partial)
    common["revision"] = request.revision or taken.revision
    manifest = build_manifest(
        **common,
        complete=True,
        finished=format_utc(datetime.now(UTC)),
        duration_s=round(time.monotonic() - started, 3),
        database=taken.database,
        source=taken.source,
        artifact=taken.artifact,
        files=files,
        tool_versions=taken.tool_versions,
        tables=taken.tables,
        members=taken.members,
        verified=request.verify,
        encryption=encryption_record(request.encrypt_to) if request.encrypt_to else None,
    )
    problems = manifest_problems(manifest, snapshot_id)
    if problems:
        raise SnapshotError(f"the snapshot is incomplete: {'; '.join(problems)}")
    write_manifest(partial, manifest)
    checks = (
        verify_snapshot(module, partial, manifest, partial, request.identity)
        if request.verify
        else []
    )
    return manifest, checks


def capture_error_text(exc: Exception, where: str = "dest") -> str:
    """An exception raised while writing `where`, as a sentence with the next step."""
    if isinstance(exc, SnapshotError):
        return str(exc)
    text = str(exc)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "disk is full" in text:
        return (
            f"{text}: the file system of {where} is full; free space there (state=pruned "
            "removes old snapshots) or point dest at a larger file system, then run again"
        )
    if isinstance(exc, sqlite3.Error):
        return (
            f"SQLite could not copy the database: {text}; if it is locked, a writer held it "
            f"longer than {SQLITE_BUSY_TIMEOUT:g}s; run again"
        )
    if isinstance(exc, OSError):
        return (
            f"{exc.filename or where}: {exc.strerror or text}; check that {where} is writable "
            "by the user the task runs as (become/become_user)"
        )
    return f"{type(exc).__name__}: {text}"


def describe_source(request: Request) -> str:
    if request.engine == "postgresql":
        return f"postgresql database {request.database}"
    if request.engine == "sqlite":
        return f"sqlite {request.sqlite_path}"
    return f"files {', '.join(request.paths)}"


def estimate_size(module: AnsibleModule, request: Request) -> int:
    """How big the source is; also proves in check mode that it can be read."""
    if request.engine == "postgresql":
        tool(module, "pg_dump")
        assert request.database is not None
        return int(pg_properties(module, request.pg, request.database)["size_bytes"] or 0)
    if request.engine == "sqlite":
        path = request.sqlite_path
        assert path is not None
        if not os.path.isfile(path):
            raise SnapshotError(f"sqlite_path {path} does not exist or is not a file")
        wal = path + "-wal"
        return os.path.getsize(path) + (os.path.getsize(wal) if os.path.isfile(wal) else 0)
    tool(module, "tar")
    tar_members(request.paths)
    total = 0
    for path in request.paths:
        if not os.path.lexists(path):
            raise SnapshotError(f"paths entry {path} does not exist")
        files = [path]
        if os.path.isdir(path) and not os.path.islink(path):
            files = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
        for name in files:
            info = os.lstat(name)
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def state_present(module: AnsibleModule, request: Request) -> dict[str, Any]:
    snapshot_id = request.snapshot_id or generate_snapshot_id(
        datetime.now(UTC), secrets.token_hex(3)
    )
    snapshot_dir = os.path.join(request.dest, snapshot_id)
    source = describe_source(request)
    result: dict[str, Any] = dict(snapshot_id=snapshot_id, path=snapshot_dir)

    if os.path.lexists(snapshot_dir):
        manifest = load_manifest(snapshot_dir, snapshot_id)
        if manifest["engine"] != request.engine:
            raise SnapshotError(
                f"snapshot {snapshot_id} already exists in {request.dest} with engine "
                f"{manifest['engine']}, not {request.engine}: choose another snapshot_id"
            )
        checks = (
            verify_snapshot(module, snapshot_dir, manifest, snapshot_dir, request.identity)
            if request.verify
            else []
        )
        return dict(
            result,
            changed=False,
            msg=f"snapshot {snapshot_id} already exists"
            + (" and verified again" if request.verify else ""),
            manifest=manifest,
            verified=request.verify,
            checks=checks,
            size_bytes=manifest["size_bytes"],
        )

    if module.check_mode:
        estimate = estimate_size(module, request)
        return dict(
            result,
            changed=True,
            msg=f"would take snapshot {snapshot_id} of {source} into {snapshot_dir}",
            manifest=None,
            verified=False,
            checks=[],
            size_bytes=None,
            estimated_size_bytes=estimate,
        )

    partial = os.path.join(request.dest, partial_dir_name(snapshot_id))
    try:
        make_directories(request.dest, DIRECTORY_MODE)
        os.mkdir(partial, DIRECTORY_MODE)
    except FileExistsError as exc:
        raise SnapshotError(
            f"{partial} already exists: another run is writing snapshot {snapshot_id}, or a run "
            "that died left it. Wait for the other run, or delete it (state=absent with this "
            "snapshot_id; state=pruned removes it once nothing wrote to it for an hour)"
        ) from exc
    except OSError as exc:
        raise SnapshotError(capture_error_text(exc)) from exc
    try:
        manifest, checks = capture(module, request, snapshot_id, partial)
        fsync_path(partial)
        os.rename(partial, snapshot_dir)
        fsync_path(request.dest)
    except BaseException as exc:
        cleanup_error = remove_tree(partial)
        if not isinstance(exc, Exception):
            raise
        outcome = (
            "The partial snapshot was removed; nothing was kept."
            if cleanup_error is None
            else f"Removing the partial snapshot also failed ({cleanup_error}): delete {partial} "
            "by hand."
        )
        details = exc.details if isinstance(exc, SnapshotError) else {}
        raise SnapshotError(
            f"snapshot {snapshot_id} of {source} was not taken: {capture_error_text(exc)}. "
            f"{outcome}",
            **dict(details, verified=False, snapshot_id=snapshot_id),
        ) from exc
    verified = " and verified it" if request.verify else " (not verified: verify=false)"
    return dict(
        result,
        changed=True,
        msg=f"took snapshot {snapshot_id} of {source} ({manifest['size_bytes']} bytes){verified}",
        manifest=manifest,
        verified=request.verify,
        checks=checks,
        size_bytes=manifest["size_bytes"],
    )


# verified


def check_engine(request: Request, manifest: dict[str, Any], snapshot_id: str) -> None:
    if request.engine is not None and request.engine != manifest["engine"]:
        raise SnapshotError(
            f"snapshot {snapshot_id} is a {manifest['engine']} snapshot, not {request.engine}: "
            "leave engine out or pick a snapshot of that engine (state=info)"
        )


def state_verified(module: AnsibleModule, request: Request) -> dict[str, Any]:
    snapshot_id = request.snapshot_id
    assert snapshot_id is not None
    snapshot_dir, manifest = find_snapshot(request.dest, snapshot_id)
    check_engine(request, manifest, snapshot_id)
    checks = verify_snapshot(module, snapshot_dir, manifest, snapshot_dir, request.identity)
    return dict(
        changed=False,
        msg=f"snapshot {snapshot_id} verified",
        snapshot_id=snapshot_id,
        path=snapshot_dir,
        manifest=manifest,
        verified=True,
        checks=checks,
        size_bytes=manifest["size_bytes"],
    )


# restored


def processes_holding(paths: list[str]) -> list[str]:
    """`pid (command)` of every process with one of `paths` open, from /proc."""
    wanted = set(paths)
    holders = []
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return []
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted:
                try:
                    with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
                        command = handle.read().strip()
                except OSError:
                    command = "?"
                holders.append(f"{pid} ({command})")
                break
    return holders


def sqlite_side_files(path: str) -> list[str]:
    return [path + "-wal", path + "-shm", path + "-journal"]


def refuse_if_in_use(live: str) -> None:
    holders = processes_holding([live, *sqlite_side_files(live)])
    if holders:
        raise SnapshotError(
            f"{live} is open in process(es) {', '.join(holders)}: swapping the file under a "
            "running application would send its writes to the old file or corrupt the new "
            "one. Stop the service (or everything that opens the database), then run again; "
            "nothing was changed"
        )


def quiesce_sqlite(live: str) -> None:
    """Fold the WAL into the live file and make sure no -wal/-shm/-journal is left behind."""
    connection = sqlite3.connect(live, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
    try:
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        connection.close()
    leftovers = [path for path in sqlite_side_files(live) if os.path.exists(path)]
    if busy or leftovers:
        raise SnapshotError(
            f"{live} is still in use: "
            + (
                f"{', '.join(leftovers)} remained after a checkpoint"
                if leftovers
                else "the WAL checkpoint was blocked"
            )
            + ". Stop every process that opens the database, then run again; the live file was "
            "not replaced"
        )


def write_sqlite_restore(
    module: AnsibleModule,
    manifest: dict[str, Any],
    snapshot_file: str,
    target: str,
    owner: os.stat_result | None,
    identity: str | None,
) -> list[str]:
    """Restore the snapshot into the new file `target` and check it; the checks that passed."""
    source = sqlite_snapshot_connection(module, snapshot_file, identity)
    try:
        restored = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(restored)
            if manifest["source"].get("journal_mode") == "wal":
                restored.execute("PRAGMA journal_mode=WAL")
            problems, checks = sqlite_read_problems(restored, target, manifest["tables"])
        finally:
            restored.close()
    finally:
        source.close()
    if problems:
        raise SnapshotError(f"the restored copy failed its check: {'; '.join(problems)}")
    recorded = manifest["source"]
    mode = stat.S_IMODE(owner.st_mode) if owner else int(recorded.get("mode", "0600"), 8)
    uid = owner.st_uid if owner else recorded.get("uid", -1)
    gid = owner.st_gid if owner else recorded.get("gid", -1)
    os.chmod(target, mode)
    if os.geteuid() == 0:
        os.chown(target, uid, gid)
    fsync_path(target)
    return checks


def swap_sqlite(plan: RestorePlan) -> None:
    """Keep the live file under `kept_as` (a hard link), then rename the restored file over it.

    The live path always names a complete database: the old one until the rename, the
    restored one after it.
    """
    try:
        if plan.kept_as:
            os.link(plan.live, plan.kept_as)
        os.replace(plan.target, plan.live)
    except OSError as exc:
        if plan.kept_as and os.path.exists(plan.target):
            remove_tree(plan.kept_as)
        raise SnapshotError(
            f"renaming {plan.target} over {plan.live} failed: {exc.strerror or exc}; the live "
            f"file was not replaced and the restored copy is still at {plan.target}: remove it "
            "and run again once the cause is fixed"
        ) from exc
    fsync_path(os.path.dirname(plan.live))


def restore_sqlite(
    module: AnsibleModule, request: Request, snapshot_dir: str, manifest: dict[str, Any]
) -> tuple[RestorePlan, list[str], dict[str, Any]]:
    snapshot_id = manifest["snapshot_id"]
    live = os.path.realpath(request.sqlite_path or manifest["source"]["path"])
    plan = sqlite_restore_plan(live, snapshot_id, request.restore_target, request.swap)
    live_exists = os.path.exists(live)
    if plan.swap and not live_exists:
        plan = replace(plan, kept_as=None)
    if not os.path.isdir(os.path.dirname(plan.target)):
        raise SnapshotError(f"the directory of {plan.target} does not exist: create it first")
    if os.path.lexists(plan.target):
        raise SnapshotError(
            f"{plan.target} already exists: it may hold an earlier restore; move it away or "
            "choose another restore_target, then run again"
        )
    if plan.kept_as and os.path.lexists(plan.kept_as):
        raise SnapshotError(
            f"{plan.kept_as} already exists, so snapshot {snapshot_id} was already swapped in "
            f"once: check that {plan.kept_as} is no longer needed and remove it to restore "
            "again; nothing was changed"
        )
    if plan.swap and live_exists:
        refuse_if_in_use(live)
    if module.check_mode:
        return plan, [], {}

    owner = os.stat(live) if live_exists else None
    try:
        checks = write_sqlite_restore(
            module,
            manifest,
            os.path.join(snapshot_dir, manifest["artifact"]),
            plan.target,
            owner,
            identity_for(manifest, request.identity),
        )
        if plan.swap and live_exists:
            quiesce_sqlite(live)
            refuse_if_in_use(live)
    except (SnapshotError, OSError, sqlite3.Error) as exc:
        for leftover in [plan.target, *sqlite_side_files(plan.target)]:
            remove_tree(leftover)
        raise SnapshotError(
            f"restoring snapshot {snapshot_id} into {plan.target} failed: "
            f"{capture_error_text(exc, os.path.dirname(plan.target))}; the live database "
            f"{live} was not changed",
            **(exc.details if isinstance(exc, SnapshotError) else {}),
        ) from exc
    if plan.swap:
        swap_sqlite(plan)
        checks.append(
            f"{live} replaced by the restored copy"
            + (f"; the previous file is kept as {plan.kept_as}" if plan.kept_as else "")
        )
    return plan, checks, {}


def pg_existing(module: AnsibleModule, connection: PgConnection, names: list[str]) -> set[str]:
    listed = ", ".join(quote_literal(name) for name in names)
    text = psql(
        module,
        connection,
        connection.maintenance_db,
        f"SELECT datname FROM pg_database WHERE datname IN ({listed})",
    )
    return set(text.splitlines())


def swap_postgresql(module: AnsibleModule, connection: PgConnection, plan: RestorePlan) -> int:
    """Put `plan.target` in place of `plan.live`; how many sessions were terminated."""
    maintenance = connection.maintenance_db
    if plan.kept_as is None:
        psql(module, connection, maintenance, swap_sql(plan))
        return 0
    psql(module, connection, maintenance, allow_connections_sql(plan.live, False))
    try:
        terminated = int(psql(module, connection, maintenance, terminate_sessions_sql(plan.live)))
        deadline = time.monotonic() + SESSION_EXIT_TIMEOUT
        while True:
            remaining = int(psql(module, connection, maintenance, count_sessions_sql(plan.live)))
            if remaining == 0:
                break
            if time.monotonic() > deadline:
                raise SnapshotError(
                    f"{remaining} session(s) on {plan.live} were still there "
                    f"{SESSION_EXIT_TIMEOUT:g}s after pg_terminate_backend"
                )
            time.sleep(SESSION_POLL_INTERVAL)
        psql(module, connection, maintenance, swap_sql(plan))
    except SnapshotError as exc:
        try:
            psql(module, connection, maintenance, allow_connections_sql(plan.live, True))
            state = "accepts connections again"
        except SnapshotError as reopen:
            state = (
                f"still REFUSES connections ({reopen}): run ALTER DATABASE "
                f"{quote_ident(plan.live)} WITH ALLOW_CONNECTIONS true now"
            )
        raise SnapshotError(
            f"swapping {plan.target} in for {plan.live} failed: {exc}. {plan.live} was not "
            f"renamed and {state}; the restored data is in {plan.target}. Drop {plan.target} "
            "and run again once the cause is fixed",
            **exc.details,
        ) from exc
    try:
        psql(module, connection, maintenance, allow_connections_sql(plan.kept_as, True))
    except SnapshotError as exc:
        module.warn(f"{plan.kept_as} (the previous database) still refuses connections: {exc}")
    return terminated


def restore_postgresql(
    module: AnsibleModule, request: Request, snapshot_dir: str, manifest: dict[str, Any]
) -> tuple[RestorePlan, list[str], dict[str, Any]]:
    snapshot_id = manifest["snapshot_id"]
    live = request.database or manifest["database"]
    plan = pg_restore_plan(live, snapshot_id, request.restore_target, request.swap)
    connection = request.pg
    pg_restore = tool(module, "pg_restore")
    existing = pg_existing(module, connection, [live, plan.target, plan.kept_as or live])
    if plan.target in existing:
        raise SnapshotError(
            f"database {plan.target} already exists: it may hold an earlier restore; drop it "
            "(or choose another restore_target) and run again; nothing was changed"
        )
    if plan.swap and live not in existing:
        plan = replace(plan, kept_as=None)
    elif plan.kept_as in existing:
        raise SnapshotError(
            f"database {plan.kept_as} already exists, so snapshot {snapshot_id} was already "
            f"swapped in once: check that {plan.kept_as} is no longer needed and drop it to "
            "restore again; nothing was changed"
        )
    if module.check_mode:
        return plan, [], {"terminated_sessions": 0}

    properties = dict(manifest["source"].get("properties") or {})
    try:
        psql(
            module,
            connection,
            connection.maintenance_db,
            create_database_sql(plan.target, properties),
        )
    except SnapshotError as exc:
        raise SnapshotError(
            f"could not create the fresh database {plan.target} (owner "
            f"{properties.get('owner')}, encoding {properties.get('encoding')}, locale "
            f"{properties.get('collate')}): {exc}; nothing was changed",
            **exc.details,
        ) from exc
    archive = os.path.join(snapshot_dir, manifest["artifact"])
    identity = identity_for(manifest, request.identity)
    try:
        if identity is None:
            run(
                module,
                [
                    *client_command(
                        pg_restore,
                        connection,
                        plan.target,
                        "--exit-on-error",
                        "--jobs",
                        str(request.jobs),
                    ),
                    archive,
                ],
                f"pg_restore into {plan.target}",
                env=client_environment(connection, APPLICATION_NAME),
            )
        else:
            # Read from age's pipe, which cannot seek: one job.
            run_decrypted(
                module,
                identity,
                archive,
                client_command(pg_restore, connection, plan.target, "--exit-on-error"),
                f"pg_restore into {plan.target}",
                env=client_environment(connection, APPLICATION_NAME),
            )
        psql(module, connection, plan.target, "ANALYZE")
    except SnapshotError as exc:
        try:
            psql(
                module,
                connection,
                connection.maintenance_db,
                f"DROP DATABASE IF EXISTS {quote_ident(plan.target)}",
            )
            cleanup = f"the partly restored database {plan.target} was dropped"
        except SnapshotError as drop:
            cleanup = f"dropping the partly restored database {plan.target} also failed: {drop}"
        raise SnapshotError(
            f"{exc}; {cleanup}; the live database {live} was not changed. Fix the cause (a "
            "missing role, permissions: restore as a superuser, e.g. become_user: postgres) "
            "and run again",
            **exc.details,
        ) from exc
    checks = [
        f"pg_restore --exit-on-error restored {manifest['artifact']} into the fresh database "
        f"{plan.target}, then ANALYZE"
    ]
    terminated = 0
    if plan.swap:
        terminated = swap_postgresql(module, connection, plan)
        checks.append(
            f"{plan.target} renamed to {live}"
            + (
                f"; the previous database is kept as {plan.kept_as} ({terminated} session(s) "
                "terminated)"
                if plan.kept_as
                else ""
            )
        )
    return plan, checks, {"terminated_sessions": terminated}


def restore_files(
    module: AnsibleModule, request: Request, snapshot_dir: str, manifest: dict[str, Any]
) -> tuple[RestorePlan, list[str], dict[str, Any]]:
    target = request.restore_target
    if not target or not target.startswith("/"):
        raise SnapshotError(
            "restoring a files snapshot needs restore_target, an absolute directory to extract "
            "into (the archive holds paths relative to /); copy what you need from there"
        )
    if request.swap:
        raise SnapshotError(
            "swap is not supported for files snapshots: extract them into restore_target and "
            "put the files in place with ansible.builtin.copy (remote_src: true)"
        )
    target = os.path.normpath(target)
    plan = RestorePlan(engine="files", target=target, live="/", swap=False, kept_as=None)
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise SnapshotError(
            f"restore_target {target} exists and is not an empty directory: choose a new one"
        )
    if module.check_mode:
        return plan, [], {}
    created = not os.path.exists(target)
    make_directories(target, DIRECTORY_MODE)
    archive = os.path.join(snapshot_dir, manifest["artifact"])
    identity = identity_for(manifest, request.identity)
    try:
        if identity is None:
            run(
                module,
                [
                    tool(module, "tar"),
                    "--extract",
                    "--gzip",
                    "--file",
                    archive,
                    "--directory",
                    target,
                ],
                f"tar --extract into {target}",
            )
        else:
            run_decrypted(
                module,
                identity,
                archive,
                [tool(module, "tar"), "--extract", "--gzip", "--file", "-", "--directory", target],
                f"tar --extract into {target}",
            )
    except SnapshotError as exc:
        if created:
            remove_tree(target)
        raise SnapshotError(f"{exc}; nothing outside {target} was changed", **exc.details) from exc
    return plan, [f"{manifest['artifact']} extracted into {target}"], {}


def state_restored(module: AnsibleModule, request: Request) -> dict[str, Any]:
    snapshot_id = request.snapshot_id
    assert snapshot_id is not None
    snapshot_dir, manifest = find_snapshot(request.dest, snapshot_id)
    check_engine(request, manifest, snapshot_id)
    checks = verify_snapshot(module, snapshot_dir, manifest, snapshot_dir, request.identity)
    restorers = {
        "postgresql": restore_postgresql,
        "sqlite": restore_sqlite,
        "files": restore_files,
    }
    plan, restore_checks, extra = restorers[manifest["engine"]](
        module, request, snapshot_dir, manifest
    )
    action = "would restore" if module.check_mode else "restored"
    swapped = (
        f" and put it in place of {plan.live}"
        + (f" (previous kept as {plan.kept_as})" if plan.kept_as else "")
        if plan.swap
        else ""
    )
    return dict(
        changed=True,
        msg=f"{action} snapshot {snapshot_id} into {plan.target}{swapped}",
        snapshot_id=snapshot_id,
        path=snapshot_dir,
        manifest=manifest,
        verified=True,
        checks=checks + restore_checks,
        size_bytes=manifest["size_bytes"],
        restore=dict(plan.as_dict(), **extra),
    )


# absent, pruned, info


def state_absent(module: AnsibleModule, request: Request) -> dict[str, Any]:
    snapshot_id = request.snapshot_id
    assert snapshot_id is not None
    snapshot_dir = os.path.join(request.dest, snapshot_id)
    if snapshot_id in request.protect:
        raise SnapshotError(
            f"snapshot {snapshot_id} is in protect, so it is never deleted: take it out of "
            "protect first if it really is no longer needed"
        )
    found = [
        path
        for path in (snapshot_dir, os.path.join(request.dest, partial_dir_name(snapshot_id)))
        if os.path.lexists(path)
    ]
    result: dict[str, Any] = dict(snapshot_id=snapshot_id, path=snapshot_dir)
    if not found:
        return dict(result, changed=False, msg=f"there is no snapshot {snapshot_id}", deleted=[])
    if not module.check_mode:
        for path in found:
            error = remove_tree(path)
            if error is not None:
                raise SnapshotError(
                    f"could not delete {path}: {error}; run as the owner of dest (become)"
                )
    action = "would delete" if module.check_mode else "deleted"
    return dict(result, changed=True, msg=f"{action} snapshot {snapshot_id}", deleted=[snapshot_id])


def state_pruned(module: AnsibleModule, request: Request) -> dict[str, Any]:
    assert request.keep is not None
    listing = scan(request.dest)
    plan = retention_plan(listing.snapshots, request.keep, request.protect)
    stale = stale_partials(listing.partials, time.time())
    if not module.check_mode:
        done: list[str] = []
        for name in [*plan.deleted, *stale]:
            error = remove_tree(os.path.join(request.dest, name))
            if error is not None:
                raise SnapshotError(
                    f"could not delete {name} in {request.dest}: {error} (already deleted: "
                    f"{', '.join(done) or 'nothing'}); run as the owner of dest (become)",
                    deleted=done,
                )
            done.append(name)
    stale_set = set(stale)
    action = "would delete" if module.check_mode else "deleted"
    return dict(
        changed=bool(plan.deleted or stale),
        msg=f"{action} {len(plan.deleted)} snapshot(s) and {len(stale)} stale partial "
        f"snapshot(s); kept {len(plan.kept)}",
        deleted=list(plan.deleted),
        kept=list(plan.kept),
        deleted_partials=stale,
        ignored=[
            entry for entry in listing.ignored if os.path.basename(entry["path"]) not in stale_set
        ],
    )


def state_info(module: AnsibleModule, request: Request) -> dict[str, Any]:
    listing = scan(request.dest)
    snapshots = sorted(listing.snapshots, key=lambda s: (s.started, s.snapshot_id), reverse=True)
    if request.snapshot_id is not None:
        snapshots = [s for s in snapshots if s.snapshot_id == request.snapshot_id]
    return dict(
        changed=False,
        msg=f"{len(snapshots)} complete snapshot(s) in {request.dest}",
        snapshots=[s.as_dict() for s in snapshots],
        ignored=listing.ignored,
    )


HANDLERS = {
    "present": state_present,
    "verified": state_verified,
    "restored": state_restored,
    "absent": state_absent,
    "pruned": state_pruned,
    "info": state_info,
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True
    )
    started = time.monotonic()
    # A private key given as a recipient by mistake is masked in everything the task returns.
    module.no_log_values.update(secret_looking(module.params["encrypt_to"] or []))
    try:
        request = build_request(module.params)
        result = HANDLERS[request.state](module, request)
    except SnapshotError as exc:
        module.fail_json(
            msg=str(exc),
            **dict(
                dict(changed=False, duration_s=round(time.monotonic() - started, 3)),
                **exc.details,
            ),
        )
    result["duration_s"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
