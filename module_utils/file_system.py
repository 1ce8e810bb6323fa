# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Directories created with the mode their owner asks for, whatever the umask."""

from __future__ import annotations

import hashlib
import os
import tempfile


def make_directories(directory: str, mode: int) -> list[str]:
    """Create ``directory`` and its missing parents, each with ``mode`` (chmod after
    mkdir: the umask would otherwise take bits away). Returns the directories created,
    outermost first; an existing directory is left as it is."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    created = list(reversed(missing))
    for path in created:
        os.mkdir(path)
        os.chmod(path, mode)
    return created


def read_text(path: str) -> str | None:
    """The file's text; None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def file_sha256(path: str) -> str | None:
    """The file's SHA-256 (hex); None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except FileNotFoundError:
        return None


def write_text_atomic(path: str, content: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` by rename, fsynced with its directory: a reader
    sees the old file or the new one, and a crash right after leaves the new one."""
    directory = os.path.dirname(path) or "."
    handle, temp_path = tempfile.mkstemp(prefix=".bluegreen.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as temp_file:
            temp_file.write(content)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    finally:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_symlink(link: str, target: str) -> None:
    """Point ``link`` at ``target`` by renaming a new link over it: a reader (nginx, a
    systemd unit) finds the old link or the new one, never none."""
    temporary = f"{link}.bluegreen-new"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, link)
