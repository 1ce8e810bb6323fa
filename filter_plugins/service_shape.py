# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The service's ports and name as a filter, for the check every command runs before
anything is locked (roles/bluegreen_service, tasks/check). The rules are
module_utils/service_shape.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.service_shape import (
        service_shape_problems,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.service_shape import service_shape_problems


def bluegreen_service_shape_problems(
    ports: Any, colours: Sequence[str], name: Any, expected: Any = None
) -> list[str]:
    """One message per problem of a host's ports and the service's name (and of the
    service asked for with --app); empty when they are sound."""
    return service_shape_problems(ports, colours, name, expected)


class FilterModule:
    """bluegreen's service shape filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_service_shape_problems": bluegreen_service_shape_problems}
