#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: role_inputs
short_description: Check every role input the inventory sets against the roles' argument specs
description:
  - Reads every role's C(meta/argument_specs.yml) under O(roles_dir) and checks, for each
    host in O(hosts), every variable of those specs that the host's inventory, the vault
    or the extra vars set, against every entry point that documents it (its type, its
    choices, its elements and suboptions). Options a spec marks required are not required
    here, since a caller or the role's defaults supply what the inventory leaves out.
  - The check Ansible makes with a task at every include of a role (C(rolespec_validate)),
    made once per command, on the controller, before anything is locked. bluegreen's
    playbooks include their roles with C(rolespec_validate=false) and run this first.
  - A value that depends on a role's defaults cannot be resolved outside the role and is
    left to it. Values of options marked C(no_log) never appear in a message.
  - Runs in its action plugin, on the controller only, and changes nothing.
version_added: "0.9.0"
options:
  roles_dir:
    description:
      - The directory holding the roles (each with its C(meta/argument_specs.yml)).
    type: path
    required: true
  hosts:
    description:
      - The hosts whose variables are checked. Defaults to every host of the inventory.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Run it once (C(run_once)) per command, since it checks every host's variables by itself.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Check every role input the inventory sets
  role_inputs:
    roles_dir: "{{ playbook_dir }}/../roles"
  run_once: true
"""

RETURN = r"""
checked_hosts:
  description: The hosts whose variables were checked.
  returned: always
  type: list
  elements: str
  sample: [lb1, app-blue, app-green]
msg:
  description: >-
    On failure, each problem once with the role's entry point that refused it and the
    hosts it is on, and the fix.
  returned: always
  type: str
  sample: >-
    the inventory sets role variables their argument specs refuse: argument
    'bluegreen_analysis_count' is of type str and we were unable to convert to int
    (bluegreen_analysis's main) [on app-blue, app-green, lb1]. Fix the inventory (or the
    vault); nothing was changed.
"""

if __name__ == "__main__":
    import json
    import sys

    print(json.dumps({"failed": True, "msg": "role_inputs runs in its action plugin only"}))
    sys.exit(1)
