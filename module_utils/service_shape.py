# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The shape of a service as one host's inventory gives it: its name, the colours the host
runs and their ports, and the service the command was asked for.

Checked by every command before anything is locked (roles/bluegreen_service, tasks/check),
in one task per host with the smoke routes, hooks and dependencies: each problem is one
message that names the variable and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# The one rule for a service's name (the CLI's build and project scan use it too): it names
# the unit, the user, the directories and the nginx upstreams.
SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def port_problems(ports: Any, colours: Sequence[str]) -> list[str]:
    """What is wrong with ``ports`` (bluegreen_service_ports) for a host running ``colours``."""
    if not isinstance(ports, Mapping) or "blue" not in ports or "green" not in ports:
        return [f"bluegreen_service_ports must give blue and green a port each (it is {ports!r})"]
    if len(colours) > 1 and ports["blue"] == ports["green"]:
        return [
            "bluegreen_service_ports must give blue and green distinct ports on a host that"
            f" runs both colours (both are {ports['blue']!r})"
        ]
    return []


def name_problems(name: Any, expected: Any = None) -> list[str]:
    """What is wrong with ``name`` (bluegreen_service_name), and whether it is the service
    the command asked for with --app (``expected``, None when it named none)."""
    if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
        return [
            "bluegreen_service_name must be lower case letters, digits, '_' or '-', a letter"
            f" first (it is {name!r})"
        ]
    if expected not in (None, "") and expected != name:
        return [
            f"--app {expected} was asked for, but this inventory describes the service"
            f" '{name}'; pick the inventory of {expected} with -i"
        ]
    return []


def service_shape_problems(
    ports: Any, colours: Sequence[str], name: Any, expected: Any = None
) -> list[str]:
    """Every problem of the service's ports and name on one host, one message each."""
    return port_problems(ports, list(colours or [])) + name_problems(name, expected)
