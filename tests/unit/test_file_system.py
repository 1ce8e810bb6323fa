"""module_utils/file_system.py: directories get the mode asked for, whatever the umask."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.file_system import (
    file_sha256,
    make_directories,
    read_text,
    write_text_atomic,
)


@pytest.fixture
def strict_umask():
    previous = os.umask(0o077)
    yield
    os.umask(previous)


@pytest.mark.parametrize("mode", [0o755, 0o700])
def test_every_missing_parent_gets_the_mode_and_existing_ones_are_left(
    tmp_path: Path, strict_umask: None, mode: int
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o750)
    os.chmod(existing, 0o750)
    target = existing / "a" / "b"

    created = make_directories(str(target), mode)

    assert created == [str(existing / "a"), str(target)]
    for path in created:
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert stat.S_IMODE(existing.stat().st_mode) == 0o750


def test_an_existing_directory_is_not_touched(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o711)
    assert make_directories(str(tmp_path), 0o755) == []
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o711


def test_text_and_checksum_of_a_missing_file_are_none(tmp_path: Path) -> None:
    assert read_text(str(tmp_path / "absent")) is None
    assert file_sha256(str(tmp_path / "absent")) is None
    present = tmp_path / "present"
    present.write_bytes(b"x" * (3 << 20))
    assert file_sha256(str(present)) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_an_atomic_write_replaces_the_file_with_the_mode_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "marker"
    target.write_text("old\n")
    write_text_atomic(str(target), "new\n", 0o640)
    assert read_text(str(target)) == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["marker"]
