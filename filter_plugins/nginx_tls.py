# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""TLS at the load balancer as a filter, for roles/bluegreen_lb: the certificate chain and
key read and checked on the controller before any load balancer is touched. The rules are
module_utils/nginx_tls.py's. The result holds the key: only a no_log task may set it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.nginx_tls import (
        given_inputs,
        tls_material,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.nginx_tls import given_inputs, tls_material


def bluegreen_lb_tls_material(
    values: dict[str, Any], https_port: int, http_port: int
) -> dict[str, Any]:
    """``{certificate, key, sha256, problems}`` of the role's TLS inputs (``values``, by
    variable name, with what the controller read from each file); the PEM text is empty
    when there are problems, each naming the variable and the fix."""
    certificate, key = given_inputs(values)
    return tls_material(certificate, key, int(https_port), int(http_port)).as_dict()


class FilterModule:
    """bluegreen's TLS filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_lb_tls_material": bluegreen_lb_tls_material}
