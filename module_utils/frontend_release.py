# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Decisions behind frontend_release, as pure functions: which members of an artifact are
its built frontend and where each lands, whether the public path can be served, and which
unlinked releases go.

On a load balancer a service's frontend lives under one root::

    <root>/releases/<version>/<public path>/index.html, assets/...
    <root>/blue  -> releases/<version>      (what blue serves)
    <root>/green -> releases/<version>      (what green serves)

nginx serves ``root <root>/$colour`` for the public path, the colour read per request
(the live flag), so one switch moves the HTML, scripts and styles with the API.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

COLOURS = ("blue", "green")
FRONTEND_DIR = "frontend"
MARKER = ".bluegreen-frontend"
_PATH_RE = re.compile(r"/([A-Za-z0-9._~-]+/)*")
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,99}")


@dataclass(frozen=True)
class Placement:
    """An artifact member of the frontend and where it lands under the release."""

    member: str
    target: str


def public_path_problem(path: object) -> str | None:
    """Why ``path`` cannot be the public path the frontend is served under, or None."""
    if (
        not isinstance(path, str)
        or not _PATH_RE.fullmatch(path)
        or any(segment in (".", "..") for segment in path.split("/"))
    ):
        return (
            f"the frontend's public path {path!r} must start and end with / and hold plain "
            "path segments, e.g. /ui/ or / (what the build's base path is)"
        )
    return None


def version_problem(version: object) -> str | None:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        return f"version {version!r} is not a release version (letters, digits, . + _ -)"
    return None


def placements(members: Iterable[str], public_path: str) -> list[Placement]:
    """The artifact's frontend members (``<top>/frontend/<file>``) and their place under
    the release: ``<public path>/<file>``; anything else in the artifact is left out.
    A member that would leave the release (``..``, absolute) raises ValueError."""
    prefix = public_path.strip("/")
    placed = []
    for member in members:
        parts = member.split("/")
        if len(parts) < 3 or parts[1] != FRONTEND_DIR or not parts[2]:
            continue
        relative = posixpath.normpath("/".join(parts[2:]))
        if relative.startswith(("../", "/")) or relative in ("..", "."):
            raise ValueError(f"artifact member {member!r} leads out of the release")
        placed.append(Placement(member, posixpath.join(prefix, relative) if prefix else relative))
    return sorted(placed, key=lambda placement: placement.target)


def link_target(version: str) -> str:
    """What a colour's link holds: relative, so the root can move."""
    return f"releases/{version}"


def releases_to_prune(
    releases: Sequence[str], links: Mapping[str, str | None], keep: str
) -> list[str]:
    """The releases no colour's link names and that are not ``keep``: a colour's assets
    stay while it is warm, and the old colour's hashed assets are what the pages it served
    still ask for."""
    linked = {posixpath.basename(target) for target in links.values() if target}
    return sorted(release for release in releases if release not in linked | {keep})


def missing_frontend_message(artifact: str) -> str:
    return (
        f"{artifact} carries no built frontend ({FRONTEND_DIR}/ at the release root): build "
        "it with [tool.bluegreen.frontend] in the project's pyproject.toml, or unset "
        "bluegreen_service_frontend for a service without one"
    )
