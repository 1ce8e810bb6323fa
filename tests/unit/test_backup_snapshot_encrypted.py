"""Encrypted snapshots (age), with the real age binary: SQLite and files run here for real;
PostgreSQL's are in test_backup_snapshot_postgresql.py. Only ciphertext reaches the disk,
the identity never does, verification decrypts every byte, and a restore needs the key."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import backup_snapshot
import pytest
from ansible.module_utils import backup_encryption
from ansible.module_utils import backup_snapshot as rules
from test_backup_snapshot_module import args, make_db, rewrite_manifest_for, rows, sqlite_args


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "backups" / "sampleapp"


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_db(tmp_path / "srv" / "db.sqlite3", orders=3000)


def encrypted(keys: dict[str, str], **overrides: Any) -> dict[str, Any]:
    return {"encrypt_to": [keys["team_recipient"]], "identity": keys["team_identity"], **overrides}


def no_plaintext_under(folder: Path, needles: list[bytes]) -> list[str]:
    """Files under `folder` holding any of `needles`."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and any(needle in path.read_bytes() for needle in needles):
            found.append(str(path))
    return found


def flip_byte(path: Path, at: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(at)
        byte = handle.read(1)
        handle.seek(at)
        handle.write(bytes([byte[0] ^ 0x01]))


def sealed(run_module, dest: Path, live: Path, keys: dict[str, str]) -> Path:
    """An encrypted snapshot r1 of ``live``; its ciphertext."""
    run_module(backup_snapshot.main, sqlite_args(dest, live, snapshot_id="r1", **encrypted(keys)))
    return dest / "r1" / "database.sqlite3.age"


class TestEncryptedSqlite:
    def test_only_ciphertext_on_disk_and_the_manifest_records_it(
        self, run_module, dest: Path, live: Path, keys: dict[str, str]
    ) -> None:
        result = run_module(backup_snapshot.main, sqlite_args(dest, live, **encrypted(keys)))

        assert result["failed"] is False, result["msg"]
        snapshot = Path(result["path"])
        artifact = snapshot / "database.sqlite3.age"
        assert sorted(os.listdir(snapshot)) == ["database.sqlite3.age", "manifest.json"]
        assert artifact.read_bytes().startswith(b"age-encryption.org/v1\n")
        # Neither SQLite's header nor any row, nor the key, is anywhere on disk.
        assert (
            no_plaintext_under(dest, [b"SQLite format 3", b"user-1@example", b"AGE-SECRET"]) == []
        )
        manifest = json.loads((snapshot / "manifest.json").read_text())
        assert manifest["encryption"] == {"tool": "age", "recipients": [keys["team_recipient"]]}
        assert manifest["files"][0]["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
        assert manifest["tool_versions"]["age"].split(".")[0].lstrip("v").isdigit()
        assert any("age decrypted and authenticated every byte" in c for c in result["checks"])
        listed = run_module(backup_snapshot.main, args(dest, state="info"))["snapshots"]
        assert [entry["encrypted"] for entry in listed] == [True]
        assert keys["team_identity"].strip() not in json.dumps(result)

    def test_verification_needs_the_identity_and_decrypts_for_real(
        self, run_module, dest: Path, live: Path, keys: dict[str, str]
    ) -> None:
        artifact = sealed(run_module, dest, live, keys)

        without = run_module(backup_snapshot.main, args(dest, state="verified", snapshot_id="r1"))
        stranger = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", identity=keys["stranger_identity"]),
        )
        intact = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", identity=keys["team_identity"]),
        )
        # A flipped byte in the payload whose checksum is made to agree: age's own
        # authentication catches it.
        flip_byte(artifact, artifact.stat().st_size - 100)
        rewrite_manifest_for(dest / "r1", "database.sqlite3.age")
        flipped = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", identity=keys["team_identity"]),
        )

        assert without["failed"] is True
        assert "is encrypted (age, to age1" in without["msg"]
        assert "set identity (bluegreen_backup_identity" in without["msg"]
        assert stranger["failed"] is True and "age --decrypt" in stranger["msg"]
        assert "no identity matched" in stranger["msg"]
        assert intact["verified"] is True
        assert flipped["failed"] is True and flipped["verified"] is False
        assert "age --decrypt" in flipped["msg"] and "damaged, truncated" in flipped["msg"]
        assert keys["team_identity"].strip() not in json.dumps([without, stranger, flipped])

    def test_truncated_ciphertext_fails_verification(
        self, run_module, dest: Path, live: Path, keys: dict[str, str]
    ) -> None:
        artifact = sealed(run_module, dest, live, keys)
        with open(artifact, "r+b") as handle:
            handle.truncate(artifact.stat().st_size - 7)

        checksum = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", identity=keys["team_identity"]),
        )
        rewrite_manifest_for(dest / "r1", "database.sqlite3.age")
        decrypted = run_module(
            backup_snapshot.main,
            args(dest, state="verified", snapshot_id="r1", identity=keys["team_identity"]),
        )

        assert checksum["failed"] is True and "(the file is truncated)" in checksum["msg"]
        assert decrypted["failed"] is True and "age --decrypt" in decrypted["msg"]

    def test_restore_decrypts_and_swaps(
        self, run_module, dest: Path, live: Path, keys: dict[str, str]
    ) -> None:
        sealed(run_module, dest, live, keys)
        with contextlib.closing(sqlite3.connect(live, isolation_level=None)) as db:
            db.execute("DELETE FROM orders")
        assert rows(live, "orders") == 0

        refused = run_module(
            backup_snapshot.main, args(dest, state="restored", snapshot_id="r1", swap=True)
        )
        restored = run_module(
            backup_snapshot.main,
            args(
                dest, state="restored", snapshot_id="r1", swap=True, identity=keys["team_identity"]
            ),
        )

        assert refused["failed"] is True and "is encrypted" in refused["msg"]
        assert restored["failed"] is False, restored["msg"]
        assert rows(live, "orders") == 3000


class TestEncryptedFiles:
    def test_archive_is_encrypted_listed_and_restored(
        self, run_module, tmp_path: Path, dest: Path, keys: dict[str, str]
    ) -> None:
        config = tmp_path / "etc" / "sampleapp"
        config.mkdir(parents=True)
        (config / "settings.ini").write_text("[db]\npassword = plain-words-here\n")
        (config / "extra.txt").write_text("more")

        taken = run_module(
            backup_snapshot.main,
            args(dest, engine="files", paths=[str(config)], snapshot_id="f1", **encrypted(keys)),
        )
        restored = run_module(
            backup_snapshot.main,
            args(
                dest,
                state="restored",
                snapshot_id="f1",
                restore_target=str(tmp_path / "out"),
                identity=keys["team_identity"],
            ),
        )

        assert taken["failed"] is False, taken["msg"]
        assert taken["manifest"]["members"] == 3  # the directory and its two files
        assert any("3 entries as recorded" in check for check in taken["checks"])
        assert no_plaintext_under(dest, [b"plain-words-here"]) == []
        assert restored["failed"] is False, restored["msg"]
        copy = tmp_path / "out" / str(config).lstrip("/") / "settings.ini"
        assert "plain-words-here" in copy.read_text()


class TestRefusals:
    def test_a_private_key_as_recipient_is_refused_without_quoting_it(
        self, run_module, dest: Path, live: Path, keys: dict[str, str]
    ) -> None:
        secret_line = keys["team_identity"].strip().splitlines()[-1]
        result = run_module(
            backup_snapshot.main,
            sqlite_args(dest, live, encrypt_to=[secret_line], identity=keys["team_identity"]),
        )

        assert result["failed"] is True
        assert "encrypt_to[0] is a private key" in result["msg"]
        assert "age-keygen -y" in result["msg"]
        assert secret_line not in json.dumps(result)
        assert not dest.exists()

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"identity": None}, "encrypt_to with verify needs identity"),
            ({"identity": "/root/key.txt"}, "identity holds no age identity"),
            ({"encrypt_to": ["age1short"]}, "encrypt_to[0] (age1short...) is not an age recipient"),
        ],
    )
    def test_bad_encryption_input_names_the_problem_and_changes_nothing(
        self,
        run_module,
        dest: Path,
        live: Path,
        keys: dict[str, str],
        overrides: dict[str, Any],
        message: str,
    ) -> None:
        result = run_module(
            backup_snapshot.main, sqlite_args(dest, live, **{**encrypted(keys), **overrides})
        )

        assert result["failed"] is True
        assert message in result["msg"]
        assert not dest.exists()


def test_directory_format_cannot_be_encrypted() -> None:
    with pytest.raises(rules.SnapshotError, match="pg_format=directory writes a file per table"):
        rules.build_request(
            {
                "dest": "/var/backups/x",
                "engine": "postgresql",
                "database": "x",
                "pg_format": "directory",
                "encrypt_to": ["age1" + "q" * 58],
                "verify": False,
            }
        )


def test_ssh_recipients_are_accepted_and_listed_in_the_manifest_record() -> None:
    ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm2 ops@example"
    assert backup_encryption.recipient_problems([ssh, "age1" + "q" * 58]) == []
    assert backup_encryption.encryption_record([f" {ssh} "]) == {"tool": "age", "recipients": [ssh]}
    assert backup_encryption.recipient_problems(["age1" + "q" * 58] * 2) == [
        "encrypt_to names the same recipient more than once"
    ]
