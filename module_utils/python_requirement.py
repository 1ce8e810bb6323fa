# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Whether the hosts' Python can run a project, from the project's Requires-Python.

`bluegreen build` refuses a target Python the project excludes; the release's plan step
checks the same on every app host before anything changes (the filter
``bluegreen_python_requirement_problem``). Both run in the controller's own process, so
this file may use ``packaging``.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version


def python_requirement_problem(requires_python: str | None, host_python: str) -> str | None:
    """Why hosts running Python ``host_python`` cannot run a project that declares
    ``requires_python`` (its Requires-Python), or None when they can."""
    if not requires_python:
        return None
    try:
        accepted = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return (
            f"the project's Requires-Python {requires_python!r} is not a version specifier: "
            "write it as e.g. '>=3.11' (requires-python in pyproject.toml, python_requires in "
            "setup.py)"
        )
    try:
        host = Version(host_python)
    except InvalidVersion:
        return f"{host_python!r} is not a Python version: give it as X.Y.Z, e.g. 3.11.2"
    # Judged by the release, as pip does: a host on 3.12.0rc1 runs what needs >=3.12.
    if accepted.contains(host.base_version):
        return None
    return f"the project requires Python {requires_python} but the hosts run {host_python}"
