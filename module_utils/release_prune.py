# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Which installed releases an app host keeps (bluegreen_service_keep_releases): pure
functions that the release_prune module runs on the host, unit-tested without one.

A release a colour's link names is always kept, whatever its age: it is live, or the warm
rollback target, or what a failed release put back. Besides those, the ``keep`` newest
installed releases (by when their install finished) are kept; the others go, with the
artifact they were installed from and, in the container runtime, their image.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def releases_to_prune(
    installed: Mapping[str, float], linked: Collection[str], keep: int
) -> list[str]:
    """The versions to remove, oldest first. ``installed`` maps each installed version to
    when its install finished; ``linked`` are the versions a colour's link names."""
    others = sorted(
        (version for version in installed if version not in linked),
        key=lambda version: installed[version],
        reverse=True,
    )
    return sorted(others[keep:], key=lambda version: installed[version])


def keep_problem(keep: int) -> str:
    """Why ``keep`` cannot be honoured ('' when it can)."""
    if keep < 0:
        return (
            f"bluegreen_service_keep_releases is {keep}: it counts the releases kept "
            "besides those the colours run; give 0 or more"
        )
    return ""
