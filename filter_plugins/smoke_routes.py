# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Smoke routes as filters, for the roles: the check of bluegreen_service_smoke_routes
that every command runs before anything is locked or changed (roles/bluegreen_service),
and the routes the pre-switch load step sends (roles/bluegreen_analysis). The rules are
module_utils/smoke_routes.py's, the same colour_start and colour_state apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.smoke_routes import (
        load_step_routes,
        smoke_route_problems,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.smoke_routes import load_step_routes, smoke_route_problems


def bluegreen_smoke_route_problems(routes: Any, name: str = "smoke") -> list[str]:
    """One message per problem of ``routes`` (the variable ``name``), naming the route by
    its index and path and the fix; empty when every route can be sent. No message
    quotes a header value or a body."""
    return smoke_route_problems(routes, name)


def bluegreen_load_step_routes(routes: Any) -> list[dict[str, Any]]:
    """``{path, method, status}`` of the smoke routes that only read and send no headers
    and no body: what the load step may send, without any secret in its arguments."""
    return load_step_routes(routes)


class FilterModule:
    """bluegreen's smoke route filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "bluegreen_smoke_route_problems": bluegreen_smoke_route_problems,
            "bluegreen_load_step_routes": bluegreen_load_step_routes,
        }
