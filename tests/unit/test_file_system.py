"""module_utils/file_system.py: directories get the mode asked for, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.file_system import make_directories


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
