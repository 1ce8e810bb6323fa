# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Encrypted snapshots' inputs and manifest record, as pure functions: backup_snapshot
applies them, and the inventory check (bluegreen_backup_encryption_problems) runs them on
the controller before anything is locked. Nothing here quotes a private key.

Imports nothing of the project's, so the controller's filter can load it alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# An encrypted snapshot's artifact is the age ciphertext of what would be the plain one.
ENCRYPTION_TOOL = "age"
ENCRYPTED_SUFFIX = ".age"
# age's native recipients (bech32, lower case) and the SSH public keys it also takes.
_AGE_RECIPIENT_RE = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_SSH_RECIPIENT_RE = re.compile(r"(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]+=*( \S.*)?")
_AGE_IDENTITY_RE = re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]{58}$", re.MULTILINE)
_SSH_IDENTITY_MARK = "-----BEGIN OPENSSH PRIVATE KEY-----"
# The identity reaches age through a pipe, never a file: it must fit the pipe's buffer.
IDENTITY_MAX_BYTES = 60000


def looks_secret(value: str) -> bool:
    return "SECRET-KEY" in value.upper() or "PRIVATE KEY" in value


def secret_looking(values: Iterable[object]) -> list[str]:
    """The values that look like private keys, to be masked in the task's output."""
    return [value for value in values if isinstance(value, str) and looks_secret(value)]


def recipient_problems(recipients: object) -> list[str]:
    """What is wrong with encrypt_to, never quoting a value that may be a private key."""
    if not isinstance(recipients, (list, tuple)):
        return ["encrypt_to must be a list of age recipients (public keys, age1...)"]
    problems = []
    for index, recipient in enumerate(recipients):
        where = f"encrypt_to[{index}]"
        if not isinstance(recipient, str):
            problems.append(f"{where} is not a string: give an age recipient (age1...)")
        elif looks_secret(recipient):
            problems.append(
                f"{where} is a private key (an identity): encrypt_to takes the public "
                "recipient, which `age-keygen -y <identity file>` prints; keep the identity "
                "in the vault and never in the inventory's plain variables"
            )
        elif not (
            _AGE_RECIPIENT_RE.fullmatch(recipient.strip())
            or _SSH_RECIPIENT_RE.fullmatch(recipient.strip())
        ):
            problems.append(
                f"{where} ({recipient.strip()[:24]}...) is not an age recipient: give the "
                "public key age-keygen printed (age1 followed by 58 characters) or an "
                "ssh-ed25519 / ssh-rsa public key"
            )
    if not problems and len(set(recipients)) != len(recipients):
        problems.append("encrypt_to names the same recipient more than once")
    return problems


def identity_problems(identity: object) -> list[str]:
    """What is wrong with an age identity, never quoting it."""
    if not isinstance(identity, str) or not identity.strip():
        return ["identity is empty: give the age identity (AGE-SECRET-KEY-1...) from the vault"]
    if len(identity.encode()) > IDENTITY_MAX_BYTES:
        return [f"identity is larger than {IDENTITY_MAX_BYTES} bytes: give one identity file"]
    if not (_AGE_IDENTITY_RE.search(identity) or _SSH_IDENTITY_MARK in identity):
        return [
            "identity holds no age identity (a line AGE-SECRET-KEY-1...) and no OpenSSH "
            "private key: give the content of the identity file age-keygen wrote, not its "
            "path and not the public recipient"
        ]
    return []


def encryption_record(recipients: Sequence[str]) -> dict[str, Any]:
    """The manifest's `encryption`: the tool and who can decrypt; never a private key."""
    return {"tool": ENCRYPTION_TOOL, "recipients": [r.strip() for r in recipients]}


def is_encrypted(manifest: Mapping[str, Any]) -> bool:
    return isinstance(manifest.get("encryption"), Mapping)


def missing_identity_message(snapshot_id: str, manifest: Mapping[str, Any]) -> str:
    recipients = ", ".join(
        f"{r[:16]}..." for r in (manifest.get("encryption") or {}).get("recipients", [])
    )
    return (
        f"snapshot {snapshot_id} is encrypted (age, to {recipients}): reading it back needs "
        "the identity of one of its recipients; set identity (bluegreen_backup_identity, "
        "in the vault) and run again; nothing was changed"
    )


def encryption_problems(
    encrypt_to: object, identity: object, *, verify: bool, pg_format: str = "custom"
) -> list[str]:
    """Everything wrong with the encryption inputs of a snapshot task (or of the inventory:
    bluegreen_backup_encrypt_to and bluegreen_backup_identity)."""
    problems = recipient_problems(encrypt_to)
    if identity is not None and identity != "":
        problems += identity_problems(identity)
    if problems or not encrypt_to:
        return problems
    if verify and not identity:
        problems.append(
            "encrypt_to with verify needs identity, the age identity of one of the "
            "recipients, to read the snapshot back (bluegreen_backup_identity, in the vault)"
        )
    if pg_format == "directory":
        problems.append(
            "pg_format=directory writes a file per table, which cannot be encrypted as one "
            "stream without a plaintext copy on disk: use pg_format=custom with encrypt_to"
        )
    return problems


def encryption_manifest_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with a manifest's `encryption` record (none when it has none)."""
    if "encryption" not in data:
        return []
    encryption = data["encryption"]
    if not isinstance(encryption, Mapping) or encryption.get("tool") != ENCRYPTION_TOOL:
        return [f"encryption is not a record of the {ENCRYPTION_TOOL} tool"]
    recipients = encryption.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        return ["encryption.recipients is missing or empty"]
    if not str(data.get("artifact", "")).endswith(ENCRYPTED_SUFFIX):
        return [f"the artifact of an encrypted snapshot must end with {ENCRYPTED_SUFFIX}"]
    return []
