"""Every role's inputs, as the inventory sets them, checked once per command
(module_utils/role_inputs.py and its action plugin)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.module_utils.release_journal import redact
from ansible.module_utils.role_inputs import (
    input_problems,
    message_of,
    secret_values,
    without_required,
)

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

SPECS = {
    "bluegreen_x": {
        "argument_specs": {
            "main": {
                "options": {
                    "bluegreen_x_count": {"type": "int", "required": True},
                    "bluegreen_x_mode": {"type": "str", "choices": ["fast", "slow"]},
                    "bluegreen_x_password": {"type": "int", "no_log": True},
                    "bluegreen_x_routes": {
                        "type": "list",
                        "elements": "dict",
                        "options": {"path": {"type": "str", "required": True}},
                    },
                }
            },
            "start": {"options": {"bluegreen_x_count": {"type": "int"}}},
        }
    }
}


def test_values_that_pass_and_values_left_out_are_no_problem() -> None:
    assert input_problems(SPECS, {}) == []
    assert input_problems(SPECS, {"bluegreen_x_mode": "fast", "other": object()}) == []


def test_a_wrong_type_is_named_once_with_the_entry_point_that_refused_it() -> None:
    [problem] = input_problems(SPECS, {"bluegreen_x_count": "many"})
    assert "bluegreen_x_count" in problem and "unable to convert to int" in problem
    assert problem.endswith("(bluegreen_x's main)")


def test_a_choice_and_a_suboption_are_checked_in_full() -> None:
    problems = input_problems(
        SPECS, {"bluegreen_x_mode": "warp", "bluegreen_x_routes": [{"method": "GET"}]}
    )
    assert any("bluegreen_x_mode" in p and "fast, slow" in p for p in problems), problems
    assert any("path" in p for p in problems), problems


def test_required_is_lifted_only_at_the_top() -> None:
    lifted = without_required(SPECS["bluegreen_x"]["argument_specs"]["main"]["options"])
    assert "required" not in lifted["bluegreen_x_count"]
    assert lifted["bluegreen_x_routes"]["options"]["path"]["required"] is True


def test_a_secret_value_never_appears_in_a_problem() -> None:
    values = {"bluegreen_x_password": "hunter2-secret", "bluegreen_x_mode": "fast"}
    assert secret_values(SPECS, values) == ["hunter2-secret"]
    [problem] = redact(input_problems(SPECS, values), secret_values(SPECS, values))
    assert "hunter2-secret" not in problem and "********" in problem


def test_the_message_names_each_problem_once_with_its_hosts_and_the_fix() -> None:
    message = message_of({"app-green": ["bad (r's main)"], "app-blue": ["bad (r's main)"]})
    assert "bad (r's main) [on app-blue, app-green]" in message
    assert message.endswith("Fix the inventory (or the vault); nothing was changed.")


def test_every_role_documents_an_entry_point_the_check_reads() -> None:
    specs = {
        path.parent.parent.name: yaml.safe_load(path.read_text())
        for path in ROOT.glob("roles/*/meta/argument_specs.yml")
    }
    assert len(specs) == len(list(ROOT.glob("roles/*/"))), "a role has no argument specs"
    # The roles' own defaults pass their own specs (a default is what the inventory
    # would otherwise set), but for the placeholders ("") of what a caller must pass.
    defaults: dict = {}
    for path in ROOT.glob("roles/*/defaults/main.yml"):
        for name, value in (yaml.safe_load(path.read_text()) or {}).items():
            if value != "" and not (isinstance(value, str) and "{{" in value):
                defaults[name] = value
    assert input_problems(specs, defaults) == []


PLAYBOOK = """
- name: Check the inputs
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check every role input
      role_inputs:
        roles_dir: {roles}
"""


def run_check(tmp_path: Path, group_vars: dict) -> dict:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"app": {"hosts": {"app-a": {}, "app-b": {}}}}}})
    )
    (inventory / "group_vars" / "all" / "vars.yml").write_text(yaml.safe_dump(group_vars))
    book = tmp_path / "check.yml"
    book.write_text(PLAYBOOK.format(roles=ROOT / "roles"))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_CONNECTION": "local",
    }
    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(book)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    [result] = json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"].values()
    return result


def test_the_action_checks_every_host_of_the_inventory_in_one_task(tmp_path: Path) -> None:
    good = run_check(tmp_path / "good", {"bluegreen_analysis_count": 2})
    assert not good.get("failed") and good["checked_hosts"] == ["app-a", "app-b"]
    bad = run_check(
        tmp_path / "bad",
        {"bluegreen_analysis_count": "many", "bluegreen_database_password": "s3cret-pw"},
    )
    assert bad["failed"]
    assert "bluegreen_analysis_count" in bad["msg"] and "[on app-a, app-b]" in bad["msg"]
    assert "s3cret-pw" not in json.dumps(bad)
