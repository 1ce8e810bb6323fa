# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Every role's inputs, checked once per command against its argument specs.

Ansible validates a role's ``meta/argument_specs.yml`` with a task at every include of
the role; a release includes roles about thirty times, and each such task cost as much
as a real one. The roles are included with ``rolespec_validate: false`` instead (their
arguments in the tree are checked by tests/unit/test_role_calls.py), and the values the
inventory, the vault and the command set are checked here, once, before anything is
locked: every option of every entry point whose variable is set, by Ansible's own
validator. ``required`` is lifted: what the inventory leaves out, a caller or the role's
defaults supply, and the include checks in the tree see to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def without_required(options: Mapping[str, Any]) -> dict[str, Any]:
    """An entry point's options with no top-level option required: a value that is set
    is checked in full (type, choices, its own suboptions), one that is not is allowed."""
    return {
        name: {key: value for key, value in spec.items() if key != "required"}
        for name, spec in options.items()
    }


def entry_points(specs_by_role: Mapping[str, Mapping[str, Any]]) -> Iterable[tuple[str, dict]]:
    """(``role's entry``, options) of every entry point of every role's argument specs."""
    for role, document in sorted(specs_by_role.items()):
        for entry, spec in sorted(((document or {}).get("argument_specs") or {}).items()):
            yield f"{role}'s {entry}", dict((spec or {}).get("options") or {})


def input_problems(
    specs_by_role: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> list[str]:
    """What is wrong with ``values`` (variable name to value, as set for one host) by every
    entry point that documents them, one line each, the first entry point naming it."""
    problems: list[str] = []
    seen: set[str] = set()
    for where, options in entry_points(specs_by_role):
        given = {name: values[name] for name in options if name in values}
        if not given:
            continue
        result = ArgumentSpecValidator(without_required(options)).validate(
            given, validate_role_argument_spec=True
        )
        for message in result.error_messages:
            if message not in seen:
                seen.add(message)
                problems.append(f"{message} ({where})")
    return problems


def secret_values(
    specs_by_role: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> list[str]:
    """The values set for options some entry point marks no_log: a validator's message
    may quote a value, so the problems are redacted of these before anyone sees them."""
    return sorted(
        {
            str(values[name])
            for _, options in entry_points(specs_by_role)
            for name, option in options.items()
            if option.get("no_log") and values.get(name)
        }
    )


def message_of(problems_by_host: Mapping[str, list[str]]) -> str:
    """One refusal for every host's problems, each problem once with the hosts it is on."""
    hosts_of: dict[str, list[str]] = {}
    for host, problems in sorted(problems_by_host.items()):
        for problem in problems:
            hosts_of.setdefault(problem, []).append(host)
    lines = [f"{problem} [on {', '.join(hosts)}]" for problem, hosts in hosts_of.items()]
    return (
        "the inventory sets role variables their argument specs refuse: "
        + "; ".join(lines)
        + ". Fix the inventory (or the vault); nothing was changed."
    )
