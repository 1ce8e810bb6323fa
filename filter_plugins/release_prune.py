# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""bluegreen_service_keep_releases checked as a filter, for the inventory check every
command runs before anything is locked (roles/bluegreen_service). The rule is
module_utils/release_prune.py's, the same release_prune applies on the app hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.release_prune import (
        keep_problem,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.release_prune import keep_problem


def bluegreen_keep_releases_problems(keep: Any) -> list[str]:
    """What is wrong with bluegreen_service_keep_releases (none: nothing)."""
    problem = keep_problem(int(keep))
    return [problem] if problem else []


class FilterModule:
    """bluegreen's release pruning filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_keep_releases_problems": bluegreen_keep_releases_problems}
