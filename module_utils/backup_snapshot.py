# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Decisions behind backup_snapshot, as pure functions.

A snapshot is a directory ``<dest>/<snapshot_id>/`` holding the backup files and a
``manifest.json`` that records what was backed up, with the size and sha256 of every
file. It is written as ``<dest>/.<snapshot_id>.partial/`` and renamed into place only
when everything succeeded, so a directory named after its id is a finished backup.

Nothing here reads files, runs commands or opens databases: the module does the I/O
and asks these functions what a request means, what the manifest says, whether what
it read matches the manifest, which snapshots retention deletes and how restored
databases are named. That keeps every rule testable without a database host.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.backup_encryption import (
    ENCRYPTED_SUFFIX,
    encryption_manifest_problems,
    encryption_problems,
    is_encrypted,
)
from ansible.module_utils.postgresql_access import PgConnection, quote_ident, quote_literal

# Modules run on the managed host's Python, which ansible-core 2.19 allows down to 3.8,
# so this file avoids newer stdlib names such as datetime.UTC.
UTC = timezone.utc  # noqa: UP017

STATES = ("present", "verified", "restored", "absent", "pruned", "info")
ENGINES = ("postgresql", "sqlite", "files")
PG_FORMATS = ("custom", "directory")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
PARTIAL_SUFFIX = ".partial"
# A partial directory nothing has written to for this long belongs to a run that died.
STALE_PARTIAL_SECONDS = 3600.0
# PostgreSQL truncates longer identifiers silently (NAMEDATALEN - 1).
PG_IDENTIFIER_MAX_BYTES = 63
ARTIFACTS = {
    ("postgresql", "custom"): "database.dump",
    ("postgresql", "directory"): "database.dir",
    ("sqlite", None): "database.sqlite3",
    ("files", None): "files.tar.gz",
}
# How many lines of a failed PRAGMA integrity_check go into the error message.
INTEGRITY_LINES_SHOWN = 5

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TOKEN_RE = re.compile(r"[0-9a-f]{4,16}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PG_NAME_UNSAFE_RE = re.compile(r"[^a-z0-9_]")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")

NEXT_STEP_BAD_SNAPSHOT = (
    "Do not restore from this snapshot: take a new one (state=present) and delete this one "
    "(state=absent) once the new one is verified"
)


class SnapshotError(Exception):
    """A request or a snapshot backup_snapshot refuses to act on; the message says what to do.

    `details` are extra result keys for fail_json (the failed command, its stderr, ...).
    """

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.details = details


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot, as the manifest records it (path relative to the snapshot)."""

    path: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class FileState:
    """What is on disk for a manifest entry; sha256 is None when it was not worth computing."""

    size: int
    sha256: str | None


@dataclass(frozen=True)
class Request:
    """A validated backup_snapshot request."""

    state: str
    dest: str
    engine: str | None = None
    snapshot_id: str | None = None
    release_id: str | None = None
    revision: str | None = None
    database: str | None = None
    pg: PgConnection = field(default_factory=PgConnection)
    pg_format: str = "custom"
    jobs: int = 1
    compress: int | None = None
    sqlite_path: str | None = None
    paths: tuple[str, ...] = ()
    keep: int | None = None
    protect: tuple[str, ...] = ()
    verify: bool = True
    restore_target: str | None = None
    swap: bool = False
    encrypt_to: tuple[str, ...] = ()
    identity: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SnapshotSummary:
    """A complete snapshot found under dest, as `state=info` lists it."""

    snapshot_id: str
    path: str
    engine: str
    started: str
    finished: str
    duration_s: float
    size_bytes: int
    release_id: str | None
    revision: str | None
    database: str | None
    checksum: str = ""
    verified: bool | None = None
    encrypted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "path": self.path,
            "engine": self.engine,
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "size_bytes": self.size_bytes,
            "release_id": self.release_id,
            "revision": self.revision,
            "database": self.database,
            "checksum": self.checksum,
            "verified": self.verified,
            "encrypted": self.encrypted,
        }


@dataclass(frozen=True)
class RetentionPlan:
    """Which complete snapshots retention keeps and deletes, newest first."""

    kept: tuple[str, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True)
class RestorePlan:
    """Where a restore writes (`target`), what it replaces (`live`) and keeps (`kept_as`).

    `kept_as` is None when nothing is swapped, or when there is no live database to keep.
    """

    engine: str
    target: str
    live: str
    swap: bool
    kept_as: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "target": self.target,
            "live": self.live,
            "swap": self.swap,
            "kept_as": self.kept_as,
        }


# Time and ids


def format_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a Z suffix; sorts as text in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate_snapshot_id(now: datetime, token: str) -> str:
    """`20261122T020304Z-1a2b3c`: UTC time of the snapshot, then a random hex token."""
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"token {token!r} must be 4 to 16 lowercase hex digits")
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{token}"


def validate_snapshot_id(value: object, option: str = "snapshot_id") -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise SnapshotError(
            f"{option} {value!r} is not valid: use up to 100 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (it names a directory under dest), or leave "
            "snapshot_id out to get one generated, e.g. 20261122T020304Z-1a2b3c"
        )
    return value


def partial_dir_name(snapshot_id: str) -> str:
    """The directory a snapshot is written into before it is complete."""
    return f".{snapshot_id}{PARTIAL_SUFFIX}"


def is_partial_dir_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX) and len(name) > 9


def artifact_name(engine: str, pg_format: str | None = None, *, encrypted: bool = False) -> str:
    """The main file (or directory) of a snapshot, relative to the snapshot directory."""
    name = ARTIFACTS[(engine, pg_format if engine == "postgresql" else None)]
    return name + ENCRYPTED_SUFFIX if encrypted else name


# Requests


def _positive_int(value: object, option: str, meaning: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SnapshotError(f"{option} must be 1 or more ({meaning}), got {value!r}")
    return value


def tar_members(paths: Iterable[str]) -> list[str]:
    """Archive member names for absolute `paths`: relative to / so tar -C / can take them."""
    members = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise SnapshotError(
                f"paths entry {path!r} is not an absolute path: list the files and directories "
                "to archive as absolute paths, e.g. /etc/sampleapp"
            )
        member = posixpath.normpath(path).lstrip("/")
        if not member:
            raise SnapshotError(
                "paths must not contain / itself: list the directories that hold the "
                "service's files and configuration, e.g. /etc/sampleapp and /srv/sampleapp/media"
            )
        if member not in members:
            members.append(member)
    return members


def build_request(params: Mapping[str, Any]) -> Request:
    """Turn the module parameters into a Request, or raise SnapshotError."""
    state = params.get("state") or "present"
    if state not in STATES:
        raise SnapshotError(f"state {state!r} is not valid: use one of {', '.join(STATES)}")
    dest = params.get("dest")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise SnapshotError(
            f"dest {dest!r} is not an absolute path: give the directory that holds this "
            "service's snapshots, e.g. /var/backups/bluegreen/sampleapp"
        )
    engine = params.get("engine")
    if engine is not None and engine not in ENGINES:
        raise SnapshotError(f"engine {engine!r} is not valid: use one of {', '.join(ENGINES)}")
    pg_format = params.get("pg_format") or "custom"
    if pg_format not in PG_FORMATS:
        raise SnapshotError(
            f"pg_format {pg_format!r} is not valid: use one of {', '.join(PG_FORMATS)}"
        )
    snapshot_id = params.get("snapshot_id")
    if snapshot_id is not None:
        snapshot_id = validate_snapshot_id(snapshot_id)
    elif state in ("verified", "restored", "absent"):
        raise SnapshotError(
            f"state={state} needs snapshot_id: list the snapshots with state=info and pick one"
        )
    keep = params.get("keep")
    if keep is not None:
        keep = _positive_int(keep, "keep", "the number of newest complete snapshots to keep")
    elif state == "pruned":
        raise SnapshotError(
            "state=pruned needs keep, the number of newest complete snapshots to keep"
        )
    protect = tuple(
        validate_snapshot_id(item, "protect entry") for item in params.get("protect") or ()
    )
    jobs = _positive_int(params.get("jobs", 1), "jobs", "parallel pg_dump/pg_restore jobs")
    compress = params.get("compress")
    if compress is not None and (
        isinstance(compress, bool) or not isinstance(compress, int) or not 0 <= compress <= 9
    ):
        raise SnapshotError(f"compress must be a pg_dump level from 0 to 9, got {compress!r}")
    port = params.get("login_port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise SnapshotError(f"login_port must be a TCP port between 1 and 65535, got {port!r}")
    request = Request(
        state=state,
        dest=posixpath.normpath(dest),
        engine=engine,
        snapshot_id=snapshot_id,
        release_id=params.get("release_id"),
        revision=params.get("revision"),
        database=params.get("database") or None,
        pg=PgConnection(
            user=params.get("login_user") or None,
            host=params.get("login_host") or None,
            port=port,
            password=params.get("login_password") or None,
            maintenance_db=params.get("maintenance_db") or "postgres",
        ),
        pg_format=pg_format,
        jobs=jobs,
        compress=compress,
        sqlite_path=params.get("sqlite_path") or None,
        paths=tuple(params.get("paths") or ()),
        keep=keep,
        protect=protect,
        verify=bool(params.get("verify", True)),
        restore_target=params.get("restore_target") or None,
        swap=bool(params.get("swap", False)),
        encrypt_to=tuple(r.strip() for r in params.get("encrypt_to") or ()),
        identity=params.get("identity") or None,
    )
    problems = encryption_problems(
        list(params.get("encrypt_to") or ()),
        request.identity,
        verify=request.verify and state == "present",
        pg_format=request.pg_format,
    )
    if problems:
        raise SnapshotError("; ".join(problems) + "; nothing was changed")
    if state == "present":
        _check_capture_request(request)
    return request


def _check_capture_request(request: Request) -> None:
    if request.engine is None:
        raise SnapshotError(
            "state=present needs engine: postgresql (pg_dump), sqlite (online backup API) "
            "or files (tar)"
        )
    if request.engine == "postgresql" and not request.database:
        raise SnapshotError("engine=postgresql needs database, the name of the database to dump")
    if request.engine == "sqlite" and not (request.sqlite_path or "").startswith("/"):
        raise SnapshotError(
            f"engine=sqlite needs sqlite_path, the absolute path of the live database file "
            f"(got {request.sqlite_path!r})"
        )
    if request.engine == "files":
        if not request.paths:
            raise SnapshotError(
                "engine=files needs paths, the absolute files and directories to archive"
            )
        tar_members(request.paths)
    if request.engine != "postgresql" and request.pg_format != "custom":
        raise SnapshotError(f"pg_format applies to engine=postgresql only, not {request.engine}")
    if request.engine != "postgresql" and request.compress is not None:
        raise SnapshotError(f"compress applies to engine=postgresql only, not {request.engine}")


# Manifest


def build_manifest(
    *,
    snapshot_id: str,
    engine: str,
    complete: bool,
    started: str,
    finished: str | None,
    duration_s: float | None,
    host: str,
    release_id: str | None,
    revision: str | None,
    database: str | None,
    source: Mapping[str, Any],
    artifact: str,
    files: Sequence[FileEntry],
    tool_versions: Mapping[str, str],
    tables: Mapping[str, int] | None = None,
    members: int | None = None,
    verified: bool | None = None,
    encryption: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest.json of a snapshot.

    It is first written with complete=False and no files, so a directory left by a run that
    died says so, and rewritten with complete=True once every file is written and hashed.
    `verified` says whether the snapshot is read back before it is kept: with True, a
    snapshot that fails verification never becomes visible, so a visible one passed.
    """
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "snapshot_id": snapshot_id,
        "engine": engine,
        "complete": complete,
        "started": started,
        "finished": finished,
        "duration_s": duration_s,
        "host": host,
        "release_id": release_id,
        "revision": revision,
        "database": database,
        "source": dict(source),
        "artifact": artifact,
        "files": [entry.as_dict() for entry in sorted(files, key=lambda entry: entry.path)],
        "size_bytes": sum(entry.size for entry in files),
        "tool_versions": dict(tool_versions),
    }
    if tables is not None:
        manifest["tables"] = dict(sorted(tables.items()))
    if members is not None:
        manifest["members"] = members
    if verified is not None:
        manifest["verified"] = verified
    if encryption is not None:
        manifest["encryption"] = dict(encryption)
    return manifest


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_entry_problems(index: int, entry: object) -> list[str]:
    where = f"files[{index}]"
    if not isinstance(entry, Mapping):
        return [f"{where} is not an object with path, size and sha256"]
    problems = []
    path = entry.get("path")
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or posixpath.normpath(path) != path
        or path.split("/")[0] == ".."
        or path == MANIFEST_NAME
    ):
        problems.append(f"{where}.path {path!r} is not a plain relative path inside the snapshot")
    if not _is_count(entry.get("size")):
        problems.append(f"{where}.size {entry.get('size')!r} is not a byte count")
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
        problems.append(f"{where}.sha256 {sha!r} is not 64 lowercase hex digits")
    return problems


def manifest_problems(data: object, snapshot_id: str | None = None) -> list[str]:
    """Everything wrong with a manifest that should describe a complete snapshot."""
    if not isinstance(data, Mapping):
        return ["it is not a JSON object"]
    problems = []
    if data.get("format") != MANIFEST_FORMAT:
        problems.append(
            f"format is {data.get('format')!r}, this module reads format {MANIFEST_FORMAT}"
        )
    if snapshot_id is not None and data.get("snapshot_id") != snapshot_id:
        problems.append(
            f"snapshot_id is {data.get('snapshot_id')!r} but the directory is {snapshot_id!r}"
        )
    engine = data.get("engine")
    if engine not in ENGINES:
        problems.append(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if data.get("complete") is not True:
        problems.append("complete is not true: the snapshot was never finished")
    for key in ("started", "finished"):
        if not isinstance(data.get(key), str) or not _TIMESTAMP_RE.fullmatch(data[key]):
            problems.append(f"{key} {data.get(key)!r} is not a UTC timestamp")
    duration = data.get("duration_s")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
        problems.append(f"duration_s {duration!r} is not a number of seconds")
    if not isinstance(data.get("source"), Mapping):
        problems.append("source is missing")
    if not isinstance(data.get("tool_versions"), Mapping):
        problems.append("tool_versions is missing")
    files = data.get("files")
    if not isinstance(files, list) or not files:
        problems.append("files is missing or empty: nothing was recorded")
        files = []
    for index, entry in enumerate(files):
        problems.extend(_file_entry_problems(index, entry))
    if problems:
        return problems
    artifact = data.get("artifact")
    paths = [entry["path"] for entry in files]
    if len(set(paths)) != len(paths):
        problems.append("files lists the same path more than once")
    if not isinstance(artifact, str) or not any(
        path == artifact or path.startswith(artifact + "/") for path in paths
    ):
        problems.append(f"artifact {artifact!r} is not among the recorded files")
    if data.get("size_bytes") != sum(entry["size"] for entry in files):
        problems.append(
            f"size_bytes {data.get('size_bytes')!r} is not the sum of the file sizes "
            f"({sum(entry['size'] for entry in files)})"
        )
    if engine == "sqlite":
        tables = data.get("tables")
        if not isinstance(tables, Mapping) or not all(
            isinstance(name, str) and _is_count(count) for name, count in tables.items()
        ):
            problems.append("tables (row count per table) is missing or not name: count")
        if not isinstance(data["source"].get("path"), str):
            problems.append("source.path (the live database file) is missing")
    if engine == "files" and not _is_count(data.get("members")):
        problems.append("members (the number of archive entries) is missing")
    if engine == "postgresql" and not isinstance(data.get("database"), str):
        problems.append("database is missing")
    return problems + encryption_manifest_problems(data)


def validate_manifest(data: object, path: str, snapshot_id: str | None = None) -> dict[str, Any]:
    """`data` as a complete snapshot's manifest, or SnapshotError naming every problem."""
    problems = manifest_problems(data, snapshot_id)
    if problems:
        raise SnapshotError(
            f"{path} does not describe a complete snapshot: {'; '.join(problems)}. "
            f"{NEXT_STEP_BAD_SNAPSHOT}",
            verified=False,
        )
    assert isinstance(data, dict)
    return data


def file_entries(manifest: Mapping[str, Any]) -> list[FileEntry]:
    return [
        FileEntry(path=entry["path"], size=entry["size"], sha256=entry["sha256"])
        for entry in manifest["files"]
    ]


def summarise(manifest: Mapping[str, Any], path: str) -> SnapshotSummary:
    return SnapshotSummary(
        snapshot_id=manifest["snapshot_id"],
        path=path,
        engine=manifest["engine"],
        started=manifest["started"],
        finished=manifest["finished"],
        duration_s=manifest["duration_s"],
        size_bytes=manifest["size_bytes"],
        release_id=manifest.get("release_id"),
        revision=manifest.get("revision"),
        database=manifest.get("database"),
        checksum=snapshot_checksum(file_entries(manifest)),
        verified=manifest.get("verified") if isinstance(manifest.get("verified"), bool) else None,
        encrypted=is_encrypted(manifest),
    )


def snapshot_checksum(files: Sequence[FileEntry]) -> str:
    """One sha256 for the whole snapshot: the file's own, or a digest of every path and sha256.

    A one-file snapshot (custom dump, SQLite) shows the sha256 that `sha256sum` prints for
    it; a directory dump gets a digest of its sorted `sha256  path` lines.
    """
    if len(files) == 1:
        return files[0].sha256
    ordered = sorted(files, key=lambda entry: entry.path)
    lines = "".join(f"{entry.sha256}  {entry.path}\n" for entry in ordered)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


# Verification


def checksum_problems(
    expected: Sequence[FileEntry], actual: Mapping[str, FileState | None]
) -> list[str]:
    """One sentence per file whose size or sha256 differs from the manifest, or is missing."""
    problems = []
    for entry in expected:
        found = actual.get(entry.path)
        if found is None:
            problems.append(
                f"{entry.path} is missing; the manifest records {entry.size} bytes "
                f"with sha256 {entry.sha256}"
            )
        elif found.size != entry.size:
            shape = "truncated" if found.size < entry.size else "longer than it should be"
            problems.append(
                f"{entry.path} is {found.size} bytes but the manifest records {entry.size} "
                f"(the file is {shape})"
            )
        elif found.sha256 != entry.sha256:
            problems.append(
                f"{entry.path} has sha256 {found.sha256} but the manifest records "
                f"{entry.sha256} (same size, so its content was changed or corrupted)"
            )
    return problems


def unexpected_files(expected: Sequence[FileEntry], present: Iterable[str]) -> list[str]:
    """Files in the snapshot directory that the manifest does not list."""
    listed = {entry.path for entry in expected} | {MANIFEST_NAME}
    return sorted(path for path in present if path not in listed)


def row_count_problems(
    expected: Mapping[str, int], actual: Mapping[str, int], path: str
) -> list[str]:
    """Differences between the row counts recorded at snapshot time and those read now."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        if table not in actual:
            problems.append(f"{path}: table {table} is missing (the manifest records it)")
        elif table not in expected:
            problems.append(f"{path}: table {table} is not in the manifest")
        elif actual[table] != expected[table]:
            problems.append(
                f"{path}: table {table} has {actual[table]} rows but the manifest records "
                f"{expected[table]}"
            )
    return problems


def integrity_problems(rows: Sequence[str], path: str) -> list[str]:
    """The result of PRAGMA integrity_check as problems; none when SQLite said 'ok'."""
    if list(rows) == ["ok"]:
        return []
    shown = "; ".join(rows[:INTEGRITY_LINES_SHOWN])
    more = len(rows) - INTEGRITY_LINES_SHOWN
    tail = f" (and {more} more)" if more > 0 else ""
    return [f"{path}: PRAGMA integrity_check reported: {shown}{tail}"]


def toc_entry_count(listing: str) -> int:
    """How many entries `pg_restore --list` printed (comment lines start with ';')."""
    return sum(1 for line in listing.splitlines() if line.strip() and not line.startswith(";"))


def verification_failed_message(snapshot_id: str, path: str, problems: Sequence[str]) -> str:
    return (
        f"snapshot {snapshot_id} at {path} failed verification: {'; '.join(problems)}. "
        f"{NEXT_STEP_BAD_SNAPSHOT}"
    )


# Retention


def retention_plan(
    snapshots: Sequence[SnapshotSummary], keep: int, protect: Iterable[str]
) -> RetentionPlan:
    """Keep the newest `keep` complete snapshots and every protected one; delete the rest.

    Newest means the latest `started` (the moment the data was read). A protected snapshot
    among the newest counts towards `keep`; an older one is kept in addition.
    """
    if keep < 1:
        raise SnapshotError(
            f"keep must be 1 or more, got {keep}: retention never deletes the newest snapshot; "
            "delete a single snapshot with state=absent"
        )
    ordered = sorted(snapshots, key=lambda s: (s.started, s.snapshot_id), reverse=True)
    keep_ids = {s.snapshot_id for s in ordered[:keep]} | set(protect)
    return RetentionPlan(
        kept=tuple(s.snapshot_id for s in ordered if s.snapshot_id in keep_ids),
        deleted=tuple(s.snapshot_id for s in ordered if s.snapshot_id not in keep_ids),
    )


def stale_partials(
    last_written: Mapping[str, float], now: float, max_age: float = STALE_PARTIAL_SECONDS
) -> list[str]:
    """Partial directories nothing has written to for more than `max_age` seconds.

    `last_written` maps each partial directory to the newest mtime of anything in it, so a
    long pg_dump that keeps writing its file is never taken for a dead run.
    """
    return sorted(name for name, mtime in last_written.items() if now - mtime > max_age)


# Restore naming and SQL


def _pg_safe_id(snapshot_id: str) -> str:
    return _PG_NAME_UNSAFE_RE.sub("_", snapshot_id.lower())


def _pg_name(database: str, infix: str, snapshot_id: str) -> str:
    suffix = f"{infix}{_pg_safe_id(snapshot_id)}"
    budget = PG_IDENTIFIER_MAX_BYTES - len(suffix)
    if budget < 1:
        raise SnapshotError(
            f"snapshot_id {snapshot_id} is too long to name a PostgreSQL database after it "
            f"(at most {PG_IDENTIFIER_MAX_BYTES} bytes): give restore_target, or use a shorter "
            "snapshot_id"
        )
    head = database.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return head + suffix


def pg_restore_target(database: str, snapshot_id: str) -> str:
    """`<db>_restore_<id>`, with the database part shortened to fit 63 bytes."""
    return _pg_name(database, "_restore_", snapshot_id)


def pg_before_name(database: str, snapshot_id: str) -> str:
    """`<db>_before_<id>`: where a swap keeps the database that was live."""
    return _pg_name(database, "_before_", snapshot_id)


def sqlite_restore_path(live: str, snapshot_id: str) -> str:
    return f"{live}.restore-{snapshot_id}"


def sqlite_before_path(live: str, snapshot_id: str) -> str:
    return f"{live}.before-{snapshot_id}"


def pg_restore_plan(
    live: str, snapshot_id: str, restore_target: str | None, swap: bool
) -> RestorePlan:
    target = restore_target or pg_restore_target(live, snapshot_id)
    if len(target.encode("utf-8")) > PG_IDENTIFIER_MAX_BYTES:
        raise SnapshotError(
            f"restore_target {target!r} is longer than {PG_IDENTIFIER_MAX_BYTES} bytes, which "
            "PostgreSQL would silently truncate: choose a shorter name"
        )
    if target == live:
        raise SnapshotError(
            f"restore_target must not be the live database {live}: a restore always goes into "
            "a fresh database; use swap=true to put it in place of the live one"
        )
    return RestorePlan(
        engine="postgresql",
        target=target,
        live=live,
        swap=swap,
        kept_as=pg_before_name(live, snapshot_id) if swap else None,
    )


def sqlite_restore_plan(
    live: str, snapshot_id: str, restore_target: str | None, swap: bool
) -> RestorePlan:
    target = posixpath.normpath(restore_target or sqlite_restore_path(live, snapshot_id))
    if not target.startswith("/"):
        raise SnapshotError(f"restore_target {target!r} must be an absolute path for sqlite")
    if target == live:
        raise SnapshotError(
            f"restore_target must not be the live database {live}: the snapshot is restored "
            "into a new file first; use swap=true to rename it over the live one"
        )
    if swap and posixpath.dirname(target) != posixpath.dirname(live):
        raise SnapshotError(
            f"with swap=true restore_target {target} must be in the directory of {live}, so "
            "the restored file can be renamed over it atomically; leave restore_target out"
        )
    return RestorePlan(
        engine="sqlite",
        target=target,
        live=live,
        swap=swap,
        kept_as=sqlite_before_path(live, snapshot_id) if swap else None,
    )


DATABASE_PROPERTIES_SQL = (
    "SELECT to_jsonb(d) || jsonb_build_object("
    "'owner', pg_get_userbyid(d.datdba), "
    "'encoding_name', pg_encoding_to_char(d.encoding), "
    "'server_version', current_setting('server_version'), "
    "'size_bytes', pg_database_size(d.oid)) "
    "FROM pg_database d WHERE d.datname = current_database()"
)


# Which migration tool's bookkeeping table the database has: "alembic", "django", both or "".
MIGRATION_TABLES_SQL = (
    "SELECT concat_ws(',', "
    "CASE WHEN to_regclass('alembic_version') IS NOT NULL THEN 'alembic' END, "
    "CASE WHEN to_regclass('django_migrations') IS NOT NULL THEN 'django' END)"
)

REVISION_SQL = {
    # Alembic: the revision(s) the database is at; several when branches are applied.
    "alembic": (
        "SELECT coalesce(string_agg(version_num, ',' ORDER BY version_num), '') "
        "FROM alembic_version"
    ),
    # Django: the last applied migration of each app, as migration_runner names them.
    "django": (
        "SELECT coalesce(string_agg(app || '.' || name, ',' ORDER BY app), '') FROM "
        "(SELECT DISTINCT ON (app) app, name FROM django_migrations ORDER BY app, id DESC) last"
    ),
}


def revision_query(tables_answer: str) -> str | None:
    """The query that reads the schema revision, given MIGRATION_TABLES_SQL's answer.

    Alembic wins when a database has both tables (a Django project migrated by Alembic
    keeps its revision there); None when the database has neither.
    """
    tools = [tool for tool in tables_answer.strip().split(",") if tool]
    for tool in ("alembic", "django"):
        if tool in tools:
            return REVISION_SQL[tool]
    return None


def database_properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a fresh database needs to match the dumped one, from a pg_database row as JSON.

    The row comes from to_jsonb(pg_database), so it works whatever columns the server
    version has (the ICU locale column was renamed in PostgreSQL 17).
    """
    provider = {"i": "icu", "c": "libc", "b": "builtin"}.get(row.get("datlocprovider") or "c")
    return {
        "owner": row.get("owner"),
        "encoding": row.get("encoding_name"),
        "collate": row.get("datcollate"),
        "ctype": row.get("datctype"),
        "locale_provider": provider,
        "icu_locale": row.get("daticulocale") or row.get("datlocale"),
        "server_version": row.get("server_version"),
        "size_bytes": row.get("size_bytes"),
    }


def create_database_sql(name: str, properties: Mapping[str, Any]) -> str:
    """CREATE DATABASE for a fresh, empty database shaped like the dumped one."""
    parts = [f"CREATE DATABASE {quote_ident(name)} WITH TEMPLATE template0"]
    if properties.get("owner"):
        parts.append(f"OWNER {quote_ident(properties['owner'])}")
    if properties.get("encoding"):
        parts.append(f"ENCODING {quote_literal(properties['encoding'])}")
    if properties.get("locale_provider") == "icu" and properties.get("icu_locale"):
        parts.append(f"LOCALE_PROVIDER icu ICU_LOCALE {quote_literal(properties['icu_locale'])}")
    if properties.get("collate"):
        parts.append(f"LC_COLLATE {quote_literal(properties['collate'])}")
    if properties.get("ctype"):
        parts.append(f"LC_CTYPE {quote_literal(properties['ctype'])}")
    return " ".join(parts)


def terminate_sessions_sql(database: str) -> str:
    return (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = {quote_literal(database)} AND pid <> pg_backend_pid()"
    )


def count_sessions_sql(database: str) -> str:
    return (
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE datname = {quote_literal(database)} AND pid <> pg_backend_pid()"
    )


def allow_connections_sql(database: str, allow: bool) -> str:
    return f"ALTER DATABASE {quote_ident(database)} WITH ALLOW_CONNECTIONS {str(allow).lower()}"


def swap_sql(plan: RestorePlan) -> str:
    """Both renames in one transaction: either the restored database is live, or nothing moved."""
    statements = ["BEGIN"]
    if plan.kept_as is not None:
        statements.append(
            f"ALTER DATABASE {quote_ident(plan.live)} RENAME TO {quote_ident(plan.kept_as)}"
        )
    statements.append(
        f"ALTER DATABASE {quote_ident(plan.target)} RENAME TO {quote_ident(plan.live)}"
    )
    statements.append("COMMIT")
    return ";\n".join(statements) + ";\n"


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
