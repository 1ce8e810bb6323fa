# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The container runtime's names and Compose file as filters, for bluegreen_deploy's
templates and the inventory check every command runs before anything is locked. The
rules are module_utils/container_runtime.py's, the same the modules apply on the hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.container_runtime import (
        compose_document,
        compose_project,
        image_tag,
        runtime_problems,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.container_runtime import (
        compose_document,
        compose_project,
        image_tag,
        runtime_problems,
    )


def bluegreen_image_tag(name: str, version: str) -> str:
    """The reference a release's image is tagged with on the hosts: <name>:<version>."""
    return image_tag(str(name), str(version))


def bluegreen_compose_project(name: str, colour: str) -> str:
    return compose_project(str(name), str(colour))


def bluegreen_compose_document(options: dict[str, Any]) -> dict[str, Any]:
    """The Compose file of the service's colours (module_utils.container_runtime)."""
    return compose_document(**options)


def bluegreen_runtime_problems(runtime: str, hooks: list[Any], migrate_tool: str) -> list[str]:
    """What the runtime cannot do with the service's hooks and migration tool."""
    return runtime_problems(str(runtime), hooks or [], str(migrate_tool or ""))


class FilterModule:
    """bluegreen's container runtime filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "bluegreen_image_tag": bluegreen_image_tag,
            "bluegreen_compose_project": bluegreen_compose_project,
            "bluegreen_compose_document": bluegreen_compose_document,
            "bluegreen_runtime_problems": bluegreen_runtime_problems,
        }
