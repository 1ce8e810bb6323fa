#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_contract
short_description: Look up an outcome or an event in the contract between the CLI and the playbooks
description:
  - Returns what the contract (C(module_utils/release_contract.py), which the C(bluegreen)
    CLI imports too) says about an outcome of a command - the CLI's exit code for it, its
    label, and how it is announced - or how an event that is no outcome (V(start)) is
    announced.
  - The C(bluegreen_notify) role asks it which event, headline, colour and severity
    announce a release's outcome, so that mapping is written once, in Python, and unit
    tested with the CLI's exit codes.
  - Reads and changes nothing; the answer is the same in check mode.
version_added: "0.2.0"
options:
  command:
    description:
      - The command that ended with O(outcome); its exit code depends on it.
    type: str
    default: release
    choices: [release, rollback, promote, abort, backup, restore, maintenance, lock]
  outcome:
    description:
      - The outcome to look up. An outcome the contract does not know (or an empty one)
        has no exit code or label and is announced as a V(failure), since it may hide one.
    type: str
    default: ""
  event:
    description:
      - An event to announce instead of the outcome's, such as V(start) (a release passed
        its preflight); empty for the outcome's.
    type: str
    default: ""
    choices: ["", start, success, failure, rollback, unverified, paused, held]
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Answers exactly as a real run does; the module changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the controller (C(delegate_to localhost)); it does no I/O.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Look up how a rolled-back release is announced
  release_contract:
    command: release
    outcome: rolled_back
  delegate_to: localhost
  register: announcement

- name: Look up how the start of a release is announced
  release_contract:
    event: start
  delegate_to: localhost
  register: announcement
"""

RETURN = r"""
outcome:
  description: The outcome looked up, as given.
  returned: always
  type: str
  sample: rolled_back
exit_code:
  description:
    - The exit code of C(bluegreen <command>) ending with the outcome; none when the
      command has no such outcome.
  returned: always
  type: int
  sample: 4
label:
  description:
    - What the outcome means for users' traffic, as the release report says it; none for
      an outcome the contract does not know.
  returned: always
  type: str
  sample: "rolled back: traffic is back on the previous colour, the release is bad"
notification:
  description: How the outcome, or O(event) when given, is announced.
  returned: always
  type: dict
  contains:
    event:
      description: V(start), V(success), V(failure) or V(rollback).
      type: str
      sample: rollback
    headline:
      description: The word the announcement starts with.
      type: str
      sample: ROLLED BACK
    colour:
      description: The colour of the webhook's attachment (Slack's names, or hex).
      type: str
      sample: warning
    severity:
      description: V(info), V(warning) or V(critical), for receivers that route by it.
      type: str
      sample: warning
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_contract import (
    COMMANDS,
    EVENTS,
    exit_code,
    notification,
    outcome_label,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    command=dict(type="str", default="release", choices=list(COMMANDS)),
    outcome=dict(type="str", default=""),
    event=dict(type="str", default="", choices=["", *EVENTS]),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    command, outcome, event = (module.params[name] for name in ("command", "outcome", "event"))
    code = exit_code(command, outcome)
    module.exit_json(
        changed=False,
        outcome=outcome,
        exit_code=None if code is None else int(code),
        label=outcome_label(outcome),
        notification=notification(outcome, event),
    )


if __name__ == "__main__":
    main()
