"""What each version of sampleapp brings: its features and its migrations.

The lab releases a history of versions (1.0.0, 2.0.0, fault builds) that are all built
from this one source tree. A real project gets its history from its commits; here the
installed version decides, exactly as it decides the faults (see faults.py), so every
artifact is an ordinary release and the roles need no test-only switch.

Migrations live in one Alembic version location per release line and per migration
fault. ``version_locations()`` names the ones a version carries, so Alembic (and
bluegreen's migration_runner through it) sees exactly that version's history:

============================  =========================================  ==============
version                       locations                                  head
============================  =========================================  ==============
1.x                           versions                                   0001
2.x (and 2.0.x fault builds)  versions, release_2_0                      0002
2.0.5+migfail                 versions, release_2_0, fault_migfail       0003 (fails)
2.0.6+breaking                versions, release_2_0, fault_breaking      0003 (breaking)
============================  =========================================  ==============
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sampleapp.faults import local_label

# Version locations, relative to the migrations directory.
BASE_LOCATION = "versions"
RELEASE_2_0_LOCATION = "release_2_0"
# A local-label segment -> the location of the migration that this fault build adds.
FAULT_LOCATIONS = {
    "migfail": "fault_migfail",
    "breaking": "fault_breaking",
}

_RELEASE = re.compile(r"\s*v?(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Features:
    """What the code of a version does with the schema."""

    # notes.author (migration 0002): 2.x writes and returns it; 1.x ignores it.
    author: bool = False


def release(version: str) -> tuple[int, int]:
    """Major and minor of ``version`` (``2.0.5+migfail`` -> (2, 0))."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a PEP 440 version such as 2.0.0")
    return int(match.group(1)), int(match.group(2) or 0)


def fault_segments(version: str) -> set[str]:
    return set(re.split(r"[._-]", local_label(version))) & FAULT_LOCATIONS.keys()


def version_locations(version: str) -> list[str]:
    """The Alembic version locations (relative to migrations/) that ``version`` carries."""
    locations = [BASE_LOCATION]
    if release(version) >= (2, 0):
        locations.append(RELEASE_2_0_LOCATION)
        locations.extend(FAULT_LOCATIONS[segment] for segment in sorted(fault_segments(version)))
    return locations


def features_from_version(version: str) -> Features:
    """The features of ``version``; ``+breaking`` is the build that drops notes.author."""
    return Features(author=release(version) >= (2, 0) and "breaking" not in fault_segments(version))
