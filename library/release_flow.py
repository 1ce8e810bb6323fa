#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_flow
short_description: The release's state machine - which step runs, and the decisions between steps
description:
  - Every play of a release asks this module first whether its step runs
    (O(decide=step)), given the run record the earlier plays left on the controller (a
    failed step, whether the version is live already, whether the database is SQLite and
    its migration needs a maintenance window, whether traffic moved). A step that does not
    run comes with the reason.
  - O(decide=plan) decides whether the version is live already on every app host, and
    writes the plan's journal line; O(decide=analysis) decides whether an analysis
    verdict sends traffic back, by the policy for warnings and inconclusive verdicts;
    O(decide=restored) writes what a restore after a failed migration adds to the
    failure's message.
  - O(decide=maintenance) says how C(bluegreen maintenance on|off) ended, from what each
    load balancer's toggle returned (O(load_balancers)) and a failed step.
  - Reads and changes nothing; the decision is the same in check mode.
version_added: "0.2.0"
options:
  decide:
    description:
      - Which decision to take.
    type: str
    required: true
    choices: [step, plan, analysis, restored, maintenance]
  step:
    description:
      - With O(decide=step), the step asking. A release's steps, in the order its plays run
        them, are V(preflight), V(lock), V(recover), V(lb), V(database), V(plan),
        V(snapshot), V(sqlite_plan), V(window_open), V(window_snapshot), V(window_migrate),
        V(window_restore), V(window_close), V(idle_restore), V(deploy),
        V(pre_switch_analysis), V(switch), V(analysis), V(auto_rollback), V(finish); a step
        the command does not have fails the task, naming its steps.
    type: str
  command:
    description:
      - With O(decide=step), the command whose step asks; V(backup) has the steps
        V(lock), V(snapshot) and V(finish); V(rollback) has V(lock), V(rollback_switch),
        V(finish) and the steps of a rollback with data (V(data_options) to V(data_switch));
        V(restore) has V(restore_read) to V(restore_resume) and V(finish).
    type: str
    choices: [release, backup, rollback, restore, maintenance]
    default: release
  record:
    description:
      - With O(decide=step), the run record. Keys (all optional) C(failure) (the failed
        step as the C(bluegreen_release) role recorded it, or none), C(unchanged),
        C(sqlite), C(installed), C(window), C(migration_started), C(maintenance_was_on),
        C(keep_maintenance), C(switched), C(pre_switch_analysis), C(analysis) (whether
        each analysis is on); for a rollback C(data_rollback), C(recover_action),
        C(recover_only), C(method), C(target_revision_known), C(data_plan) (the
        M(migration_runner) plan down to the previous release), C(data_mode), C(refused),
        C(quiesced); for a restore C(listing), C(confirmed).
    type: dict
    default: {}
  version:
    description:
      - With O(decide=plan), the version being released.
    type: str
    default: ""
  live_colour:
    description:
      - With O(decide=plan), the colour serving users now.
    type: str
    default: ""
  idle_colour:
    description:
      - With O(decide=plan), the other colour, which the release deploys to.
    type: str
    default: ""
  live_states:
    description:
      - With O(decide=plan), the live colour's state on each app host (C(version), C(state)
        as M(colour_state) reports them).
    type: list
    elements: dict
    default: []
  reconfigured:
    description:
      - With O(decide=plan), the app hosts whose live colour runs the version with another
        configuration than the inventory's.
    type: list
    elements: str
    default: []
  database_url:
    description:
      - With O(decide=plan), the service's database URL; only its scheme is read (SQLite or
        not). Never logged.
    type: str
    default: ""
  result:
    description:
      - With O(decide=analysis), the analysis result (M(golden_signals)' C(decision) and
        C(signals)).
    type: dict
    default: {}
  colour:
    description:
      - With O(decide=analysis), the colour the analysis judged.
    type: str
    default: ""
  on_warning:
    description:
      - With O(decide=analysis), what a warning verdict does.
    type: str
    choices: [proceed, rollback]
    default: proceed
  on_inconclusive:
    description:
      - With O(decide=analysis), what an inconclusive verdict does. V(pause) keeps the
        colour live and holds the release for a person (RV(pause)).
    type: str
    choices: [proceed, rollback, pause]
    default: proceed
  message:
    description:
      - With O(decide=restored), the failed migration's message.
    type: str
    default: ""
  snapshot_id:
    description:
      - With O(decide=restored), the snapshot restored; empty when there was none.
    type: str
    default: ""
  maintenance:
    description:
      - With O(decide=maintenance), whether maintenance mode was being turned on.
    type: bool
    default: false
  load_balancers:
    description:
      - With O(decide=maintenance), each load balancer's toggle result
        (C(bluegreen_lb_maintenance_result); none where it never ran).
    type: dict
    default: {}
  failure:
    description:
      - With O(decide=maintenance), the failed step, or none.
    type: dict
  error:
    description:
      - With O(decide=restored), the restore's own error when it failed too; empty when
        the restore succeeded.
    type: str
    default: ""
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Decides exactly as in a real run; the module never changes anything.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the controller (C(delegate_to localhost)); it does no I/O.
  - The rules are in C(module_utils/release_flow.py); docs/architecture.md has them as a table.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Ask whether the snapshot step runs
  release_flow:
    decide: step
    step: snapshot
    record:
      failure: "{{ bluegreen_release_failure | default(none) }}"
      unchanged: "{{ bluegreen_release_unchanged | default(false) }}"
      sqlite: "{{ bluegreen_release_sqlite | default(false) }}"
  delegate_to: localhost
  run_once: true
  register: gate

- name: Stop here when the step does not run
  ansible.builtin.meta: end_play
  when: not gate.run

- name: Decide whether the version is live already
  release_flow:
    decide: plan
    version: 2.0.0
    live_colour: blue
    idle_colour: green
    live_states: [{version: 1.0.0, state: active}]
  delegate_to: localhost
  register: plan
"""

RETURN = r"""
outcome:
  description: With O(decide=maintenance), V(maintenance_on), V(maintenance_off) or V(failed).
  returned: when decide is maintenance
  type: str
changed_any:
  description: With O(decide=maintenance), whether any load balancer changed.
  returned: when decide is maintenance
  type: bool
retry_after:
  description: With O(decide=maintenance), the Retry-After users are told, in seconds.
  returned: when decide is maintenance
  type: int
state:
  description: With O(decide=maintenance), the state asked for, V(on) or V(off).
  returned: when decide is maintenance
  type: str
journal_outcome:
  description: With O(decide=maintenance), the journal outcome of the toggle, V(ok) or V(failed).
  returned: when decide is maintenance
  type: str
run:
  description: With O(decide=step), whether the step runs.
  returned: when decide is step
  type: bool
  sample: false
reason:
  description: With O(decide=step), why the step does not run; empty when it runs.
  returned: when decide is step
  type: str
  sample: the version is live already
unchanged:
  description: With O(decide=plan), whether the version is live already (nothing to do).
  returned: when decide is plan
  type: bool
live_version:
  description: With O(decide=plan), the version the live colour runs; empty when nothing serves yet.
  returned: when decide is plan
  type: str
  sample: 1.0.0
reconfigured:
  description: With O(decide=plan), the hosts redeployed because their configuration changed.
  returned: when decide is plan
  type: list
  elements: str
sqlite:
  description: With O(decide=plan), whether the database is SQLite.
  returned: when decide is plan
  type: bool
rollback:
  description: With O(decide=analysis), whether the verdict sends traffic back.
  returned: when decide is analysis
  type: bool
pause:
  description:
    - With O(decide=analysis), whether the release holds for a person (O(on_inconclusive)
      V(pause) and nothing measured the colour healthy), to be finished by
      C(bluegreen promote) or C(bluegreen rollback).
  returned: when decide is analysis
  type: bool
message:
  description:
    - With O(decide=plan), the plan's journal line; with O(decide=analysis), why the
      analysis fails the release (empty when it does not); with O(decide=restored), the
      failure's message with what the restore did; with O(decide=maintenance), the
      toggle's outcome in one line.
  returned: when decide is plan, analysis, restored or maintenance
  type: str
  sample: deploy 2.0.0 to green, then move traffic from blue
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_flow import (
    analysis_failure,
    maintenance_report,
    pauses,
    record_from_params,
    release_plan,
    restore_failed_message,
    restored_failure_message,
    rolls_back,
    step_decision,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    decide=dict(
        type="str", required=True, choices=["step", "plan", "analysis", "restored", "maintenance"]
    ),
    step=dict(type="str"),
    command=dict(
        type="str",
        choices=["release", "backup", "rollback", "restore", "maintenance"],
        default="release",
    ),
    record=dict(type="dict", default={}),
    version=dict(type="str", default=""),
    live_colour=dict(type="str", default=""),
    idle_colour=dict(type="str", default=""),
    live_states=dict(type="list", elements="dict", default=[]),
    reconfigured=dict(type="list", elements="str", default=[]),
    database_url=dict(type="str", default="", no_log=True),
    result=dict(type="dict", default={}),
    colour=dict(type="str", default=""),
    on_warning=dict(type="str", choices=["proceed", "rollback"], default="proceed"),
    on_inconclusive=dict(type="str", choices=["proceed", "rollback", "pause"], default="proceed"),
    message=dict(type="str", default=""),
    snapshot_id=dict(type="str", default=""),
    error=dict(type="str", default=""),
    maintenance=dict(type="bool", default=False),
    load_balancers=dict(type="dict", default={}),
    failure=dict(type="dict"),
)


def decided(params: dict[str, Any]) -> dict[str, Any]:
    """The module's result for one decision."""
    decide = params["decide"]
    if decide == "step":
        record = record_from_params(params["record"])
        return step_decision(params["step"], record, params["command"]).as_dict()
    if decide == "plan":
        plan = release_plan(
            params["version"],
            params["live_colour"],
            params["idle_colour"],
            params["live_states"],
            params["reconfigured"],
        )
        return {
            "unchanged": plan.unchanged,
            "live_version": plan.live_version,
            "reconfigured": plan.reconfigured,
            "message": plan.message,
            "sqlite": params["database_url"].startswith("sqlite"),
        }
    if decide == "analysis":
        policy = (params["on_warning"], params["on_inconclusive"])
        decision = params["result"].get("decision") or {}
        return {
            "rollback": rolls_back(decision, *policy),
            "pause": pauses(decision, *policy),
            "message": analysis_failure(params["result"], params["colour"], *policy),
        }
    if decide == "maintenance":
        report = maintenance_report(
            params["maintenance"], params["load_balancers"], params["failure"]
        )
        return report.as_dict()
    snapshot = params["snapshot_id"] or None
    if params["error"]:
        return {"message": restore_failed_message(params["message"], snapshot, params["error"])}
    return {"message": restored_failure_message(params["message"], snapshot)}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("decide", "step", ["step"])],
        supports_check_mode=True,
    )
    try:
        result = decided(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
