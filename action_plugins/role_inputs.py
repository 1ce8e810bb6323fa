# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""role_inputs: every role's inputs, as every host of the inventory sets them, checked
against the roles' argument specs in one task on the controller.

The roles are included with ``rolespec_validate: false`` (a validation task at each of
about thirty includes a release was a tenth of its tasks); this is the check they would
have made, once per command, before anything is locked. The decisions are
module_utils/role_inputs.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.plugins.action import ActionBase

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils import (
        release_journal as journal,
    )
    from ansible_collections.bluegreen.release.plugins.module_utils import role_inputs
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils import release_journal as journal
    from bluegreen_module_utils import role_inputs


def specs_in(roles_dir: Path) -> dict[str, Any]:
    """Every role's meta/argument_specs.yml under ``roles_dir``, by role name."""
    return {
        path.parent.parent.name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(roles_dir.glob("*/meta/argument_specs.yml"))
    }


def documented_names(specs_by_role: dict[str, Any]) -> set[str]:
    return {name for _, options in role_inputs.entry_points(specs_by_role) for name in options}


def values_of(host_vars: Any, names: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The documented variables a host sets, templated in its own context; a value that
    depends on a role's defaults (undefined outside the role) is left to the role."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in sorted(names):
        if name not in host_vars:
            continue
        try:
            values[name] = host_vars[name]
        except AnsibleUndefinedVariable:
            continue
        except AnsibleError as exc:
            problems.append(f"{name} cannot be read: {exc.message}")
    return values, problems


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("roles_dir", "hosts"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        roles_dir = Path(str(self._task.args.get("roles_dir") or ""))
        specs = specs_in(roles_dir)
        if not specs:
            result.update(failed=True, msg=f"no role's meta/argument_specs.yml under {roles_dir}")
            return result
        names = documented_names(specs)
        hosts = self._task.args.get("hosts") or task_vars.get("groups", {}).get("all", [])
        problems_by_host: dict[str, list[str]] = {}
        for host in hosts:
            values, unreadable = values_of(task_vars["hostvars"][host], names)
            # A validator's message may quote a value: never a no_log one.
            problems = journal.redact(
                unreadable + role_inputs.input_problems(specs, values),
                role_inputs.secret_values(specs, values),
            )
            if problems:
                problems_by_host[host] = problems
        result["changed"] = False
        result["checked_hosts"] = list(hosts)
        if problems_by_host:
            result.update(failed=True, msg=role_inputs.message_of(problems_by_host))
        else:
            result["msg"] = f"every role input set for {len(hosts)} hosts passes its argument spec"
        return result
