# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The frontend's public path as a filter, for the inventory check every command runs
before anything is locked (roles/bluegreen_service). The rule is
module_utils/frontend_release.py's, the same frontend_release applies on the load balancers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.frontend_release import (
        public_path_problem,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.frontend_release import public_path_problem


def bluegreen_frontend_path_problems(path: Any) -> list[str]:
    """What is wrong with bluegreen_service_frontend_path (empty: no frontend, fine)."""
    if path in ("", None):
        return []
    if path == "/":
        return [
            "bluegreen_service_frontend_path / would send every API route to the static "
            "files: serve the frontend under a path of its own (the build's base), e.g. /ui/"
        ]
    problem = public_path_problem(path)
    return [f"bluegreen_service_frontend_path: {problem}"] if problem else []


class FilterModule:
    """bluegreen's frontend filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_frontend_path_problems": bluegreen_frontend_path_problems}
