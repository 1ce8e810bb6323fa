#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_outcome
short_description: The outcome of a release, rollback, backup or restore, and its message
description:
  - Turns what the plays of one command recorded on the controller (the step that failed,
    whether traffic moved and came back, the post-switch analysis, a recovery of an
    interrupted release) into one outcome and one message. The last play journals both,
    reports them with C(set_stats) and fails the run when a step failed.
  - "Outcomes: without a failure, V(unchanged) or O(success_outcome); with a failure,
    V(failed_before_switch) when traffic never moved, V(rolled_back) when it moved and
    came back, V(failed) otherwise (traffic may be split between colours)."
  - The message says where users' traffic is. With O(live_version) empty (nothing was
    serving before the release) it never claims that traffic stayed on the old colour or
    that the old colour stays warm for a rollback.
  - Reads and changes nothing; the decision is the same in check mode.
version_added: "0.1.0"
options:
  command:
    description:
      - The command being finished.
    type: str
    required: true
    choices: [release, rollback, promote, abort, backup, restore]
  failure:
    description:
      - The failed step as the failure entry point of the C(bluegreen_release) role recorded
        it (C(step), C(host), C(task), C(msg)); none when every step succeeded.
    type: dict
  switched:
    description:
      - Whether traffic moved to the new colour on any load balancer.
    type: bool
    default: false
  switched_back:
    description:
      - Whether traffic was sent back after a failure; none when no play recorded it
        (traffic that never moved then counts as having stayed, traffic that moved as not
        back).
    type: bool
  unchanged:
    description:
      - Whether the command found nothing to do (the version was live already, or traffic
        was on the target colour already).
    type: bool
    default: false
  success_outcome:
    description:
      - The outcome when the command succeeded and changed something.
    type: str
    choices: [released, rolled_back, promoted, aborted, backed_up, restored, held]
    default: released
  success_message:
    description:
      - The message on success instead of the command's usual one (a restore, a data
        rollback); empty for the usual one.
    type: str
    default: ""
  analysis:
    description:
      - The post-switch analysis result (C(golden_signals) with C(analysis)), whose
        C(decision) the released message quotes; none when it did not run.
    type: dict
  paused:
    description:
      - Whether the post-switch analysis held the release for a person (nothing measured
        the new colour healthy and the policy is to pause). A release that did not fail
        then ends V(paused), live with the lock held until C(bluegreen promote) or
        C(bluegreen rollback).
    type: bool
    default: false
  recover_action:
    description:
      - What the recovery of an interrupted release did (C(bluegreen_recover_plan.action),
        for example V(close), V(restore_idle), V(rollback), V(resume)); none without one.
    type: str
  recover_message:
    description:
      - The recovery's own message. A rollback that only finished an interrupted release
        reports it as its message; any other command appends it in parentheses.
    type: str
  recover_only:
    description:
      - Whether the rollback only undoes a command that was stopped (Ctrl-C in the CLI).
    type: bool
    default: false
  live_colour:
    description:
      - The colour that served users before the command.
    type: str
    default: unknown
  idle_colour:
    description:
      - The other colour, the one the command released to (or rolled back to).
    type: str
    default: unknown
  version:
    description:
      - The version being released.
    type: str
    default: ""
  release_id:
    description:
      - The identifier of the command (named in the message of a backup).
    type: str
    default: ""
  live_version:
    description:
      - The version the live colour ran before the command. An empty string means nothing
        was serving (a first release); none means unknown, and the messages name the
        live colour as before.
    type: str
  schema_moved:
    description:
      - The migration the command applied, with keys C(previous) and C(current). A release
        that fails before its switch after applying one says that the live colour now runs
        on the new schema, and how to go back.
    type: dict
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Computes the same outcome and message as a real run would; the module
      changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the controller (C(delegate_to localhost) or a play on localhost); it does no I/O.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Decide and explain the outcome of the release
  release_outcome:
    command: release
    failure: "{{ bluegreen_release_failure | default(omit) }}"
    switched: "{{ bluegreen_release_switched | default(false) }}"
    switched_back: "{{ bluegreen_release_switched_back | default(omit) }}"
    analysis: "{{ bluegreen_release_analysis | default(omit) }}"
    live_colour: "{{ bluegreen_preflight_live_colour }}"
    idle_colour: "{{ bluegreen_preflight_idle_colour }}"
    version: "{{ bluegreen_release_version }}"
    release_id: "{{ bluegreen_release_id }}"
    live_version: "{{ bluegreen_release_live_version | default(omit) }}"
  delegate_to: localhost
  register: outcome

- name: Explain a backup
  release_outcome:
    command: backup
    success_outcome: backed_up
    release_id: 20261122T050000Z-ab12cd
  delegate_to: localhost
"""

RETURN = r"""
outcome:
  description:
    - V(released), V(unverified), V(paused), V(rolled_back), V(backed_up),
      V(restored), V(promoted), V(unchanged), V(failed_before_switch) or V(failed).
  returned: always
  type: str
  sample: failed_before_switch
message:
  description: The outcome in one line, saying where users' traffic is.
  returned: always
  type: str
  sample: "deploy failed on app-green: green is not healthy -- traffic stayed on blue"
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_outcome import (
    COMMANDS,
    SUCCESS_OUTCOMES,
    facts_from_params,
    release_message,
    release_outcome,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    command=dict(type="str", required=True, choices=list(COMMANDS)),
    failure=dict(type="dict"),
    switched=dict(type="bool", default=False),
    switched_back=dict(type="bool"),
    unchanged=dict(type="bool", default=False),
    success_outcome=dict(type="str", choices=list(SUCCESS_OUTCOMES), default="released"),
    success_message=dict(type="str", default=""),
    analysis=dict(type="dict"),
    paused=dict(type="bool", default=False),
    recover_action=dict(type="str"),
    recover_message=dict(type="str"),
    recover_only=dict(type="bool", default=False),
    live_colour=dict(type="str", default="unknown"),
    idle_colour=dict(type="str", default="unknown"),
    version=dict(type="str", default=""),
    release_id=dict(type="str", default=""),
    live_version=dict(type="str"),
    schema_moved=dict(type="dict"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts = facts_from_params(module.params)
    outcome = release_outcome(facts)
    module.exit_json(changed=False, outcome=outcome, message=release_message(facts, outcome))


if __name__ == "__main__":
    main()
