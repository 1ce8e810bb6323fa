# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Declared dependencies as a filter, for the roles: the check of
bluegreen_service_dependencies that every command runs before anything is locked or
changed (roles/bluegreen_service). The rules are module_utils/dependency_probe.py's, the
same dependency_probe applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.dependency_probe import (
        dependency_problems,
        preflight_refusal,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.dependency_probe import dependency_problems, preflight_refusal


def bluegreen_dependency_problems(dependencies: Any, name: str = "dependencies") -> list[str]:
    """One message per problem of ``dependencies`` (the variable ``name``), naming the
    entry by its index and name and the fix; empty when every one can be probed."""
    return dependency_problems(dependencies, name)


def bluegreen_dependency_refusal(
    results: Any, idle_hosts: Any, live_hosts: Any, idle_colour: str
) -> str:
    """Why the release stops before the deploy ('' when it does not): a dependency the
    idle colour's hosts cannot reach while the live colour's can. ``results`` maps each
    app host to its dependency_probe result."""
    return preflight_refusal(results or {}, idle_hosts or [], live_hosts or [], idle_colour)


class FilterModule:
    """bluegreen's dependency filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "bluegreen_dependency_problems": bluegreen_dependency_problems,
            "bluegreen_dependency_refusal": bluegreen_dependency_refusal,
        }
