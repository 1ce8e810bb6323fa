# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The release's state machine as a filter: whether a play's step runs.

Every play of every command asks this first: in its ``hosts`` (bluegreen_step_hosts), and
again in roles/bluegreen_release/tasks/step.yml.
A filter runs in the controller's own process, so the question costs about a millisecond
where a module call costs half a second: a release asks it some thirty times, and a
rollback ten times before traffic moves. The rules are module_utils/release_flow.py's,
the same the release_flow module and the unit tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.python_requirement import (
        python_requirement_problem,
    )
    from ansible_collections.bluegreen.release.plugins.module_utils.release_flow import (
        maintenance_request,
        promote_refusal,
        record_from_facts,
        record_from_params,
        rollback_target_refusal,
        step_decision,
        verify_report,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.python_requirement import python_requirement_problem
    from bluegreen_module_utils.release_flow import (
        maintenance_request,
        promote_refusal,
        record_from_facts,
        record_from_params,
        rollback_target_refusal,
        step_decision,
        verify_report,
    )


def bluegreen_step_decision(
    record: Mapping[str, Any], step: str, command: str = "release"
) -> dict[str, Any]:
    """``{run, reason}`` for ``step`` of ``command`` after what ``record`` says happened."""
    return step_decision(step, record_from_params(record), command).as_dict()


def bluegreen_step_gate(
    facts: Mapping[str, Any],
    step: str,
    command: str,
    cli: Mapping[str, Any] | None = None,
    analysis: bool = True,
    pre_switch_analysis: bool = True,
) -> dict[str, Any]:
    """``{run, reason}`` for ``step`` of ``command``, from the controller's facts
    (``hostvars.localhost``) and the command's inputs: one template per play."""
    record = record_from_facts(facts, cli, analysis, pre_switch_analysis)
    return bluegreen_step_decision(record, step, command)


def bluegreen_step_runs(step: str, facts: Mapping[str, Any]) -> bool:
    """Whether ``step`` may run, from the controller's facts alone: a play asks this in
    its include's ``when`` so that a step that does not run costs one skipped task.
    The analysis switches count as on (they only ever stop a step), so the step's own
    gate (tasks/step.yml), which reads them on the play's hosts, has the last word."""
    command = str(facts.get("bluegreen_release_command") or "release")
    return bool(bluegreen_step_gate(facts, step, command, facts.get("bluegreen_cli"))["run"])


# A host pattern that matches no host and raises no "could not match" warning.
NO_HOSTS = "all:!all"


def bluegreen_step_hosts(pattern: str, step: str, facts: Mapping[str, Any]) -> str:
    """The play's host ``pattern`` when ``step`` may run (bluegreen_step_runs), else a
    pattern that matches no host. A play's ``hosts`` is templated when the play starts,
    with the facts the earlier plays left on localhost, so a step that does not run
    costs no task at all ("no hosts matched"), where a skipped include cost a worker
    process per host. Before any play named the command (a syntax check has no facts)
    the pattern stands, and the step's own gate decides."""
    if not facts.get("bluegreen_release_command"):
        return pattern
    return pattern if bluegreen_step_runs(step, facts) else NO_HOSTS


def bluegreen_maintenance_request(value: Any) -> str:
    """'on' or 'off' as `bluegreen maintenance` asked (a YAML boolean counts); '' for
    anything else, which the maintenance playbook refuses."""
    return maintenance_request(value) or ""


def bluegreen_verify_report(result: Mapping[str, Any] | None, colour: str) -> dict[str, str]:
    """``{outcome, message}`` of `bluegreen verify` from the analysis of ``colour``."""
    return verify_report(result, colour)


def bluegreen_python_requirement_problem(requires_python: str | None, host_python: str) -> str:
    """Why a host running ``host_python`` cannot run an artifact whose project requires
    ``requires_python``; '' when it can (or the artifact declares nothing)."""
    return python_requirement_problem(requires_python or None, str(host_python)) or ""


def bluegreen_rollback_target_refusal(
    runs_by_host: Mapping[str, Mapping[str, str]], colour: str, refused_versions: Mapping[str, str]
) -> str:
    """Why a rollback must not go to ``colour``, from the release directory each app host
    runs per colour (host -> colour -> link target); '' when it may."""
    return rollback_target_refusal(colour, runs_by_host or {}, refused_versions or {})


def bluegreen_promote_refusal(read: Mapping[str, Any], service: str, now: str) -> str:
    """Why a promote changes nothing ('' when it goes on): nothing paused or held, or a
    hold past its expiry (module_utils/release_flow.py's promote_refusal)."""
    return promote_refusal(read, service, now)


class FilterModule:
    """bluegreen's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "bluegreen_step_decision": bluegreen_step_decision,
            "bluegreen_step_gate": bluegreen_step_gate,
            "bluegreen_step_runs": bluegreen_step_runs,
            "bluegreen_step_hosts": bluegreen_step_hosts,
            "bluegreen_maintenance_request": bluegreen_maintenance_request,
            "bluegreen_verify_report": bluegreen_verify_report,
            "bluegreen_python_requirement_problem": bluegreen_python_requirement_problem,
            "bluegreen_rollback_target_refusal": bluegreen_rollback_target_refusal,
            "bluegreen_promote_refusal": bluegreen_promote_refusal,
        }
