# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Directories created with the mode their owner asks for, whatever the umask."""

from __future__ import annotations

import os


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
