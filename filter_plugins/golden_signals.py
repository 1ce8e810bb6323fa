# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The analysis's thresholds and routes as a filter, for the roles: checked with every
command's inventory check (roles/bluegreen_analysis, entry point check), so a bad level
stops the command before anything is locked or deployed, not at the pre-switch analysis.
The rules are module_utils/golden_signals.py's, the same golden_signals applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.golden_signals import (
        DEFAULT_THRESHOLDS,
        CanarySettings,
        GoldenSignalsError,
        canary_steps_from_params,
        canary_verdict,
        merge_thresholds,
        route_rules_from_params,
        validate_thresholds,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.golden_signals import (
        DEFAULT_THRESHOLDS,
        CanarySettings,
        GoldenSignalsError,
        canary_steps_from_params,
        canary_verdict,
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


def _canary_settings(settings: Mapping[str, Any] | None) -> CanarySettings:
    """bluegreen_analysis_canary_* as CanarySettings (a missing key keeps the default)."""
    given = dict(settings or {})
    fields = ("alpha", "latency_ratio", "error_rate_margin", "min_requests")
    try:
        return CanarySettings(
            **{
                name: (int if name == "min_requests" else float)(given[name])
                for name in fields
                if given.get(name) is not None
            }
        )
    except (TypeError, ValueError) as exc:
        raise GoldenSignalsError(f"a canary setting is not a number: {exc}") from exc


def bluegreen_canary_problems(steps: Any, settings: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with the canary's steps and settings (bluegreen_analysis_canary_*)."""
    problems = []
    try:
        canary_steps_from_params(steps, "bluegreen_analysis_canary_steps")
    except GoldenSignalsError as exc:
        problems.append(str(exc))
    try:
        _canary_settings(settings).validate()
    except GoldenSignalsError as exc:
        problems.append(f"bluegreen_analysis_canary_{exc}")
    return problems


def bluegreen_canary_steps(steps: Any) -> list[int]:
    """The canary's steps as a list of percentages (from a list or "5,25,50")."""
    return canary_steps_from_params(steps, "canary steps")


def bluegreen_canary_verdict(
    reads: Any,
    colour: str,
    compare_colour: str,
    percent: Any,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The verdict on one canary step from the nginx_requests reads of a loop over the
    load balancers (each result's ``item`` names its host)."""
    windows = [
        dict(read, host=read.get("item")) if isinstance(read, Mapping) else read
        for read in (reads.get("results") if isinstance(reads, Mapping) else reads) or []
    ]
    return canary_verdict(windows, colour, compare_colour, int(percent), _canary_settings(settings))


class FilterModule:
    """bluegreen's analysis filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "bluegreen_analysis_problems": bluegreen_analysis_problems,
            "bluegreen_canary_problems": bluegreen_canary_problems,
            "bluegreen_canary_steps": bluegreen_canary_steps,
            "bluegreen_canary_verdict": bluegreen_canary_verdict,
        }
