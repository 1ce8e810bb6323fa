"""Finding the bluegreen project (the directory holding ansible.cfg and playbooks/)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bluegreen.errors import InputError

PROJECT_DIR_ENV = "BLUEGREEN_PROJECT_DIR"


def is_project_root(path: Path) -> bool:
    """True when ``path`` has the two things every bluegreen project has."""
    return (path / "ansible.cfg").is_file() and (path / "playbooks").is_dir()


def discovered_root(start: Path) -> Path | None:
    """The nearest directory from ``start`` upwards that is a project root, if any."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if is_project_root(candidate):
            return candidate
    return None


def project_root(
    explicit: Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The project to work on.

    An explicit ``--project-dir`` wins, because a user who names a directory means it;
    then the nearest project upwards from the working directory; then the
    ``BLUEGREEN_PROJECT_DIR`` environment variable.
    """
    if explicit is not None:
        return _checked(explicit, "--project-dir")
    found = discovered_root(cwd if cwd is not None else Path.cwd())
    if found is not None:
        return found
    env = os.environ if environ is None else environ
    if env.get(PROJECT_DIR_ENV):
        return _checked(Path(env[PROJECT_DIR_ENV]), PROJECT_DIR_ENV)
    raise InputError(
        "no bluegreen project found: run from a directory inside one (it has ansible.cfg "
        f"and playbooks/), or pass --project-dir, or set {PROJECT_DIR_ENV}"
    )


def _checked(path: Path, source: str) -> Path:
    path = path.expanduser().resolve()
    if not is_project_root(path):
        raise InputError(
            f"{source} {path} is not a bluegreen project: it needs ansible.cfg and playbooks/"
        )
    return path
