"""What each version of djangoapp brings: its features and its migrations.

Every version the lab releases is built from this one source tree, so the installed
version decides what a build has (as the sample service's releases.py does). The notes
app's migrations package lists the directories of the installed version in its
``__path__``, so Django (and bluegreen's migration_runner through ``djangoapp-manage``)
sees exactly that version's migrations: 1.x has 0001, 2.x adds 0002.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import version as distribution_version

SERVICE = "djangoapp"
# Migration directories of the notes app beyond its own package directory (0001).
RELEASE_2_0_DIR = "release_2_0"

_RELEASE = re.compile(r"\s*v?(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Features:
    """What the code of a version does with the schema."""

    # Note.author (migration 0002): 2.x writes and returns it; 1.x ignores it.
    author: bool = False


def installed_version() -> str:
    return distribution_version(SERVICE)


def release(version: str) -> tuple[int, int]:
    """Major and minor of ``version`` (``2.0.1+crash`` -> (2, 0))."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a PEP 440 version such as 2.0.0")
    return int(match.group(1)), int(match.group(2) or 0)


def migration_dirs(version: str) -> list[str]:
    """Directories (inside the notes migrations package) whose migrations ``version`` has."""
    return [RELEASE_2_0_DIR] if release(version) >= (2, 0) else []


def features_from_version(version: str) -> Features:
    return Features(author=release(version) >= (2, 0))
