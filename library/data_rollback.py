#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: data_rollback
short_description: How a rollback with data takes the schema back, and what it says
description:
  - The decisions of C(bluegreen rollback --with-data) (C(playbooks/rollback_data.yml)),
    each a value of O(decide).
  - V(method) refuses an unknown O(method) before anything is locked.
  - V(releases) finds, in the journal O(records), the deploy of the live release and of
    the release to go back to (and the revision that one was deployed on), and since when
    maintenance mode has been on on every load balancer (O(flag_mtimes)).
  - V(snapshot) picks, among O(snapshots), the one the live release took before it
    changed anything.
  - V(way) chooses V(switch), V(downgrade) or V(restore), and refuses a restore that would
    lose acknowledged writes unless O(accept_data_loss); a method that cannot work is a
    failure.
  - V(restore_request) reads what C(bluegreen restore) was asked (O(snapshot_id),
    O(confirm), O(listing)) and fails when it names no snapshot and lists none.
  - V(downgrade_message) and V(message) write the journal line of a downgrade and the
    outcome's message of a finished data rollback; V(restore_refusal) and
    V(restored_message) say what a restore (C(bluegreen restore)) would lose and what it did.
  - Reads and changes nothing; the decision is the same in check mode.
version_added: "0.2.0"
options:
  decide:
    description:
      - Which decision to take.
    type: str
    required: true
    choices: [method, releases, snapshot, way, downgrade_message, message, restore_refusal,
              restored_message, restore_request]
  method:
    description:
      - The method asked for (V(auto), V(downgrade) or V(restore) are known).
    type: str
    default: auto
  records:
    description:
      - With O(decide=releases), the journal records.
    type: list
    elements: dict
    default: []
  live_colour:
    description:
      - The colour serving users now.
    type: str
    default: ""
  flag_mtimes:
    description:
      - With O(decide=releases), the modification time of the maintenance flag on each
        load balancer (none where it is off).
    type: list
    elements: raw
    default: []
  load_balancers:
    description:
      - With O(decide=releases), how many load balancers there are.
    type: int
    default: 1
  snapshots:
    description:
      - With O(decide=snapshot), the snapshots on the database host (M(backup_snapshot) info).
    type: list
    elements: dict
    default: []
  live_release:
    description:
      - With O(decide=snapshot), the live release's deploy record.
    type: dict
  plan:
    description:
      - With O(decide=way), the plan of the live release's migrations down to the previous
        release's revision (M(migration_runner) with C(state=planned)).
    type: dict
  snapshot:
    description:
      - With O(decide=way) or O(decide=message), the snapshot taken before the live release.
    type: dict
  since:
    description:
      - With O(decide=way), since when maintenance mode has been on everywhere.
    type: str
  accept_data_loss:
    description:
      - With O(decide=way), whether the operator accepts losing the writes since the snapshot.
    type: bool
    default: false
  live_version:
    description:
      - The version the live colour runs.
    type: str
    default: ""
  target_revision:
    description:
      - The revision the previous release was deployed on.
    type: str
  target_after_live:
    description:
      - With O(decide=way), whether the colour to go back to was deployed after the live
        one (O(decide=releases) returns it); such a data rollback is refused.
    type: bool
    default: false
  mode:
    description:
      - With O(decide=message), the way the data went back.
    type: str
    choices: [switch, downgrade, restore]
    default: switch
  target_colour:
    description:
      - With O(decide=message), the colour traffic went back to.
    type: str
    default: ""
  target_version:
    description:
      - With O(decide=message) or O(decide=way), the version the colour to go back to runs.
    type: str
    default: ""
  previous:
    description:
      - With O(decide=downgrade_message), the revision before the downgrade.
    type: str
    default: ""
  current:
    description:
      - With O(decide=downgrade_message), the revision after the downgrade.
    type: str
    default: ""
  downgrade:
    description:
      - With O(decide=message), the downgrade's result (C(previous), C(current)).
    type: dict
  loses_writes:
    description:
      - With O(decide=message), whether the restore gave up writes.
    type: bool
    default: true
  snapshot_id:
    description:
      - With O(decide=restore_refusal) or O(decide=restored_message), the snapshot named.
    type: str
    default: ""
  manifest:
    description:
      - With O(decide=restore_refusal) or O(decide=restored_message), the snapshot's
        manifest (C(started), C(release_id), C(revision)).
    type: dict
    default: {}
  confirm:
    description:
      - With O(decide=restore_request), the snapshot the operator confirmed (C(--yes)).
    type: str
    default: ""
  listing:
    description:
      - With O(decide=restore_request), whether the snapshots are only listed.
    type: bool
    default: false
  host:
    description:
      - With O(decide=restore_refusal), the host that holds the snapshot.
    type: str
    default: ""
  kept_as:
    description:
      - With O(decide=restored_message), where the replaced database is kept.
    type: str
  maintenance_was_on:
    description:
      - With O(decide=restored_message), whether maintenance mode was on before the restore.
    type: bool
    default: false
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
  - Run it on the controller (C(delegate_to localhost)); it does no I/O. The rules are in
    C(module_utils/data_rollback.py).
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Choose a downgrade, a restore or a plain switch
  data_rollback:
    decide: way
    method: auto
    plan: "{{ bluegreen_rollback_plan }}"
    snapshot: "{{ bluegreen_rollback_snapshot }}"
    since: "{{ bluegreen_rollback_maintenance_since }}"
    live_version: 2.0.0
    target_revision: "0001"
  delegate_to: localhost
  register: way
"""

RETURN = r"""
live_release:
  description: With O(decide=releases), the live release's deploy record (none when unknown).
  returned: when decide is releases
  type: dict
target_release:
  description: With O(decide=releases), the deploy record of the release to go back to.
  returned: when decide is releases
  type: dict
target_revision:
  description: With O(decide=releases), the revision the release to go back to was deployed on.
  returned: when decide is releases
  type: str
maintenance_since:
  description: With O(decide=releases), since when maintenance mode is on on every load balancer.
  returned: when decide is releases
  type: str
target_after_live:
  description:
    - With O(decide=releases), whether the colour to go back to was deployed after the live
      one, so that traffic already went back from it without its data.
  returned: when decide is releases
  type: bool
snapshot:
  description:
    - With O(decide=snapshot), the live release's snapshot (none when it is not kept); with
      O(decide=restore_request), the snapshot named.
  returned: when decide is snapshot or restore_request
  type: raw
confirmed:
  description: With O(decide=restore_request), whether the restore of that snapshot is confirmed.
  returned: when decide is restore_request
  type: bool
mode:
  description: With O(decide=way), V(switch), V(downgrade) or V(restore).
  returned: when decide is way
  type: str
loses_writes:
  description: With O(decide=way), whether a restore would lose acknowledged writes.
  returned: when decide is way
  type: bool
why_restore:
  description: With O(decide=way), why only a restore takes the schema back.
  returned: when decide is way
  type: str
failure:
  description: With O(decide=way), why the method cannot work (empty when it can).
  returned: when decide is way
  type: str
refusal:
  description:
    - With O(decide=way), why the data rollback is refused (empty when it is not), a
      restore that would lose acknowledged writes or a colour deployed after the live one.
  returned: when decide is way
  type: str
message:
  description:
    - With O(decide=downgrade_message), O(decide=message), O(decide=restore_refusal) or
      O(decide=restored_message), the line.
  returned: when decide is downgrade_message, message, restore_refusal or restored_message
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.data_rollback import (
    data_rollback,
    deployed_releases,
    downgrade_message,
    maintenance_since,
    method_error,
    restore_refusal,
    restore_request,
    restored_message,
    rolled_back_message,
    snapshot_of,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    decide=dict(
        type="str",
        required=True,
        choices=[
            "method",
            "releases",
            "snapshot",
            "way",
            "downgrade_message",
            "message",
            "restore_refusal",
            "restored_message",
            "restore_request",
        ],
    ),
    method=dict(type="str", default="auto"),
    records=dict(type="list", elements="dict", default=[]),
    live_colour=dict(type="str", default=""),
    flag_mtimes=dict(type="list", elements="raw", default=[]),
    load_balancers=dict(type="int", default=1),
    snapshots=dict(type="list", elements="dict", default=[]),
    live_release=dict(type="dict"),
    plan=dict(type="dict"),
    snapshot=dict(type="dict"),
    since=dict(type="str"),
    accept_data_loss=dict(type="bool", default=False),
    live_version=dict(type="str", default=""),
    target_revision=dict(type="str"),
    target_after_live=dict(type="bool", default=False),
    mode=dict(type="str", choices=["switch", "downgrade", "restore"], default="switch"),
    target_colour=dict(type="str", default=""),
    target_version=dict(type="str", default=""),
    previous=dict(type="str", default=""),
    current=dict(type="str", default=""),
    downgrade=dict(type="dict"),
    loses_writes=dict(type="bool", default=True),
    snapshot_id=dict(type="str", default=""),
    manifest=dict(type="dict", default={}),
    host=dict(type="str", default=""),
    kept_as=dict(type="str"),
    maintenance_was_on=dict(type="bool", default=False),
    confirm=dict(type="str", default=""),
    listing=dict(type="bool", default=False),
)


def decided(p: dict[str, Any]) -> dict[str, Any]:
    """The module's result for one decision."""
    decide = p["decide"]
    if decide == "releases":
        releases = deployed_releases(p["records"], p["live_colour"])
        mtimes = [None if m in (None, "") else float(m) for m in p["flag_mtimes"]]
        return {
            "live_release": releases.live,
            "target_release": releases.target,
            "target_revision": releases.target_revision,
            "target_after_live": releases.target_after_live,
            "maintenance_since": maintenance_since(mtimes, p["load_balancers"]),
        }
    if decide == "snapshot":
        return {"snapshot": snapshot_of(p["snapshots"], p["live_release"])}
    if decide == "way":
        way = data_rollback(
            p["method"],
            p["plan"],
            p["snapshot"],
            p["since"],
            p["accept_data_loss"],
            p["live_version"],
            p["target_revision"],
            p["target_after_live"],
            p["target_version"],
        )
        return way.as_dict()
    if decide == "restore_request":
        return restore_request(p["snapshot_id"], p["confirm"], p["listing"]).as_dict()
    if decide == "restore_refusal":
        return {"message": restore_refusal(p["snapshot_id"], p["manifest"], p["host"])}
    if decide == "restored_message":
        message = restored_message(
            p["snapshot_id"],
            p["manifest"],
            p["kept_as"],
            p["live_colour"] or None,
            p["maintenance_was_on"],
        )
        return {"message": message}
    if decide == "downgrade_message":
        return {"message": downgrade_message(p["previous"], p["current"], p["live_version"])}
    message = rolled_back_message(
        p["mode"],
        p["target_colour"],
        p["target_version"],
        p["live_colour"],
        p["live_version"],
        p["target_revision"],
        p["downgrade"],
        p["snapshot"],
        p["loses_writes"],
    )
    return {"message": message}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["decide"] == "restore_request":
        try:
            module.exit_json(changed=False, **decided(module.params))
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    if module.params["decide"] == "method":
        error = method_error(module.params["method"])
        if error:
            module.fail_json(msg=error)
        module.exit_json(changed=False)
    module.exit_json(changed=False, **decided(module.params))


if __name__ == "__main__":
    main()
