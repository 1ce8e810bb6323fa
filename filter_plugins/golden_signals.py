# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The analysis's thresholds and routes as a filter, for the roles: checked with every
command's inventory check (roles/bluegreen_analysis, entry point check), so a bad level
stops the command before anything is locked or deployed, not at the pre-switch analysis.
The rules are module_utils/golden_signals.py's, the same golden_signals applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.golden_signals import (
        DEFAULT_THRESHOLDS,
        GoldenSignalsError,
        merge_thresholds,
        route_rules_from_params,
        validate_thresholds,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.golden_signals import (
        DEFAULT_THRESHOLDS,
        GoldenSignalsError,
        merge_thresholds,
        route_rules_from_params,
        validate_thresholds,
    )


def bluegreen_analysis_problems(
    thresholds: Any,
    routes: Any = None,
    thresholds_name: str = "bluegreen_analysis_thresholds",
    routes_name: str = "bluegreen_analysis_routes",
) -> list[str]:
    """What is wrong with the thresholds (laid over the built-in defaults, as the
    analysis lays them) and the routes with levels of their own; empty when both hold."""
    problems = []
    try:
        validate_thresholds(merge_thresholds(DEFAULT_THRESHOLDS, thresholds, thresholds_name))
    except GoldenSignalsError as exc:
        problems.append(f"{thresholds_name}: {exc}")
    try:
        route_rules_from_params(routes)
    except GoldenSignalsError as exc:
        problems.append(f"{routes_name}: {exc}")
    return problems


class FilterModule:
    """bluegreen's analysis filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_analysis_problems": bluegreen_analysis_problems}
