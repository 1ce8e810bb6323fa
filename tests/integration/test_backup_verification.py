"""A damaged snapshot fails verification, on the lab's PostgreSQL and on SQLite.

Snapshots are taken by backup_snapshot on the database host, of the service's live
database; then the test damages the backup file the way disks and interrupted copies do
(truncation, one flipped byte) and asks backup_snapshot to verify it. A damaged backup
whose manifest was rewritten to match must still fail: verification reads the backup
(pg_restore, PRAGMA integrity_check), it does not only compare checksums.

The lab inventories encrypt snapshots with age (group_vars/all/backup.yml): the same
damage fails the verification of the ciphertext, whose real read is age's decryption; the
database host holds no plaintext copy and never the identity, and a restore with the
identity brings the data back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import LAB, ROOT, SINGLE, ansible, ensure_live, shell

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

APP = "sampleapp"


@dataclass(frozen=True)
class Database:
    inventory: str
    host: str
    engine: str
    file: str  # the backup file inside a snapshot
    user: str  # who takes and reads snapshots (as the release does)
    base: str  # a directory that user may create snapshot directories in
    encrypted: bool = False

    def snapshot_args(self) -> dict:
        if self.engine == "postgresql":
            engine = {"engine": "postgresql", "database": APP}
        else:
            engine = {"engine": "sqlite", "sqlite_path": f"/var/lib/{APP}/{APP}.db"}
        return {**engine, **(ENCRYPTION if self.encrypted else {}), **self.keys()}

    def keys(self) -> dict:
        return IDENTITY if self.encrypted else {}


# The inventory's own keys, templated on the host by Ansible: never on a command line.
ENCRYPTION = {"encrypt_to": "{{ bluegreen_backup_encrypt_to }}"}
IDENTITY = {"identity": "{{ bluegreen_backup_identity }}"}
POSTGRESQL = Database(LAB, "db1", "postgresql", "database.dump", "postgres", "/var/lib/postgresql")
SQLITE = Database(SINGLE, "single1", "sqlite", "database.sqlite3", "root", "/var/backups")
POSTGRESQL_AGE = Database(
    LAB, "db1", "postgresql", "database.dump.age", "postgres", "/var/lib/postgresql", True
)
SQLITE_AGE = Database(
    SINGLE, "single1", "sqlite", "database.sqlite3.age", "root", "/var/backups", True
)

# Damage done on the host with its own Python: halve the file, or flip one byte in the middle.
TRUNCATE = "import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p) // 2)"
FLIP = (
    "import os,sys; p=sys.argv[1]; f=open(p,'r+b'); f.seek(os.path.getsize(p) // 2); "
    "b=f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xFF])); f.close()"
)
# Make the manifest agree with the damaged file, so only a real read can notice.
REWRITE_MANIFEST = (
    "import hashlib,json,os,sys; d,name=sys.argv[1:]; m=json.load(open(d+'/manifest.json')); "
    "data=open(d+'/'+name,'rb').read(); "
    "[f.update(size=len(data), sha256=hashlib.sha256(data).hexdigest()) "
    "for f in m['files'] if f['path']==name]; "
    "m['size_bytes']=sum(f['size'] for f in m['files']); "
    "json.dump(m, open(d+'/manifest.json','w'))"
)


@pytest.fixture(params=[POSTGRESQL, SQLITE], ids=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest) -> Database:
    db: Database = request.param
    ensure_live("2.0.0", inventory=db.inventory)
    return db


@pytest.fixture
def dest(database: Database) -> Iterator[str]:
    path = f"{database.base}/bluegreen-test-{uuid.uuid4().hex[:12]}"
    yield path
    shell(database.host, f"rm -rf {path}", database.inventory)


def backup(db: Database, dest: str, args: dict) -> dict:
    return ansible(
        db.host, "backup_snapshot", {"dest": dest, **args}, db.inventory, become_user=db.user
    )


def snapshot(database: Database, dest: str, snapshot_id: str) -> str:
    """A verified snapshot of the live database; the path of its backup file."""
    taken = backup(database, dest, {"snapshot_id": snapshot_id, **database.snapshot_args()})
    assert taken.get("failed") is not True, taken
    assert taken["verified"] is True
    return f"{dest}/{snapshot_id}/{database.file}"


def on_host(database: Database, script: str, *args: str) -> None:
    quoted = " ".join(f"'{arg}'" for arg in args)
    done = shell(database.host, f'python3 -c "{script}" {quoted}', database.inventory)
    assert done.get("rc") == 0, done


def verify(database: Database, dest: str, snapshot_id: str) -> dict:
    return backup(
        database, dest, {"state": "verified", "snapshot_id": snapshot_id, **database.keys()}
    )


def test_truncated_backup_fails_verification_naming_the_file(database: Database, dest: str) -> None:
    path = snapshot(database, dest, "truncated")
    on_host(database, TRUNCATE, path)

    result = verify(database, dest, "truncated")

    assert result["failed"] is True
    assert result["verified"] is False
    assert f"{database.file} is " in result["msg"]
    assert "(the file is truncated)" in result["msg"]
    assert "Do not restore from this snapshot" in result["msg"]


def test_byte_flipped_backup_fails_verification_naming_the_checksums(
    database: Database, dest: str
) -> None:
    path = snapshot(database, dest, "flipped")
    on_host(database, FLIP, path)

    result = verify(database, dest, "flipped")

    assert result["failed"] is True
    assert result["verified"] is False
    assert f"{database.file} has sha256" in result["msg"]
    assert "but the manifest records" in result["msg"]


# Truncation and a flipped byte are caught by the checksums, encrypted or not; what the
# manifest hides is caught by the real read, which for ciphertext is age's.
@pytest.mark.parametrize(
    "database",
    [POSTGRESQL, SQLITE, POSTGRESQL_AGE, SQLITE_AGE],
    ids=["postgresql", "sqlite", "postgresql-age", "sqlite-age"],
    indirect=True,
)
def test_damage_hidden_from_the_manifest_fails_the_real_read(database: Database, dest: str) -> None:
    path = snapshot(database, dest, "hidden")
    on_host(database, TRUNCATE, path)
    on_host(database, REWRITE_MANIFEST, f"{dest}/hidden", database.file)

    result = verify(database, dest, "hidden")

    assert result["failed"] is True
    assert result["verified"] is False
    assert f"{database.file}: " in result["msg"]
    if database.encrypted:
        assert "age --decrypt" in result["msg"] and "damaged, truncated" in result["msg"]
    else:
        reader = "pg_restore" if database.engine == "postgresql" else "integrity_check"
        assert reader in result["msg"] or "cannot read it" in result["msg"]


def lab_identity_line() -> str:
    """The secret line of the lab's age identity (state/lab/age/, made by `lab up`)."""
    text = (ROOT / "state/lab/age/identity.txt").read_text()
    return next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-1"))


@pytest.mark.parametrize("database", [POSTGRESQL_AGE], ids=["postgresql-age"], indirect=True)
def test_encrypted_snapshot_leaves_no_plaintext_or_key_on_the_host_and_restores(
    database: Database, dest: str
) -> None:
    path = snapshot(database, dest, "sealed")
    # Every file on db1 (not /proc, /sys, /dev): none holds the identity; the snapshot's
    # folder holds no pg_dump archive (its magic PGDMP) and no row of the service.
    secret = lab_identity_line()[-40:]
    anywhere = shell(
        database.host,
        f"grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e '{secret}' / "
        "2>/dev/null; true",
        database.inventory,
    )
    in_dest = shell(
        database.host,
        f"grep -rlF -e PGDMP -e alembic_version {dest}; ls {dest}/sealed",
        database.inventory,
    )
    modes = shell(database.host, f"stat -c '%a %U %n' {dest}/sealed {path}", database.inventory)
    restored = backup(
        database,
        dest,
        {
            "state": "restored",
            "snapshot_id": "sealed",
            "restore_target": f"{APP}_sealed_check",
            **database.keys(),
        },
    )
    check = f"{APP}_sealed_check"
    count = "SELECT count(*) FROM alembic_version"
    rows = shell(
        database.host,
        f"su postgres -c \"psql -XtAq -d {check} -c '{count}'\"; "
        f"su postgres -c \"psql -Xq -c 'DROP DATABASE IF EXISTS {check}'\"",
        database.inventory,
    )

    assert anywhere["stdout"] == "", anywhere
    assert in_dest["stdout"].split() == ["database.dump.age", "manifest.json"], in_dest
    assert modes["stdout"].split("\n") == [
        f"700 postgres {dest}/sealed",
        f"600 postgres {path}",
    ], modes
    assert restored.get("failed") is not True, restored
    assert any("age decrypted and authenticated every byte" in c for c in restored["checks"])
    assert rows["stdout"].splitlines()[0] == "1", rows
