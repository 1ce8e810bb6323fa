# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Release hooks as a filter, for the roles: the check of bluegreen_service_hooks that
every command runs before anything is locked or changed (roles/bluegreen_service). The
rules are module_utils/hooks.py's, the same colour_hook applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.hooks import hook_problems
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.hooks import hook_problems


def bluegreen_hook_problems(hooks: Any, name: str = "hooks") -> list[str]:
    """One message per problem of ``hooks`` (the variable ``name``), naming the hook by
    its index and name and the fix; empty when every hook can run. No message shows an
    environment value."""
    return hook_problems(hooks, name)


class FilterModule:
    """bluegreen's release hook filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_hook_problems": bluegreen_hook_problems}
