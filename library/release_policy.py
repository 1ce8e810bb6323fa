#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_policy
short_description: Decide whether an inventory may be released to now (windows and approval)
description:
  - Judges the current time against the inventory's release windows and checks that a
    release that needs an approval names its approver. Refuses (fails) with a message
    naming the window and the flag that overrides it; returns the decision so that it
    can be journaled and shown in the release report.
  - Windows are wall-clock times in O(timezone) and follow daylight saving time.
    A window whose end is not after its start crosses midnight; its O(allowed_windows[].days)
    are the days it starts on. Refused windows win over allowed ones. With no allowed
    windows, every time outside the refused windows is allowed.
  - With O(enforce=false) (a rollback, which is an emergency) nothing is refused; the
    decision still says what would have been, so it can be recorded.
  - Reads nothing on the host but its clock and time zone database; changes nothing.
version_added: "0.1.0"
options:
  timezone:
    description:
      - IANA time zone the windows are written in, for example V(Europe/Berlin).
    type: str
    default: UTC
  allowed_windows:
    description:
      - Times at which releases are allowed; none means any time outside O(refused_windows).
      - Each is V(HH:MM-HH:MM) or a dict with C(start), C(end), optional C(days)
        (names V(mon)..V(sun) or ranges such as V(mon-fri); default every day) and C(name).
    type: list
    elements: raw
    default: []
  refused_windows:
    description:
      - Times at which releases are refused unless forced with O(force_reason); same form
        as O(allowed_windows).
    type: list
    elements: raw
    default: []
  force_reason:
    description:
      - Why the release goes ahead outside its windows (C(--force-window REASON)).
        Required to release outside the windows; recorded in the journal.
    type: str
    default: ""
  approval_required:
    description:
      - Whether releases of this inventory need an approver named in O(approved_by).
    type: bool
    default: false
  approved_by:
    description:
      - Who approved the release (C(--approved-by NAME)); recorded in the journal.
    type: str
    default: ""
  enforce:
    description:
      - Refuse when the policy is not met. V(false) only records what the policy says.
    type: bool
    default: true
  now:
    description:
      - The instant to judge, ISO 8601 (UTC when it has no offset); default the host's
        clock. For tests and dry runs ("would a release at 10:00 be allowed?").
    type: str
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Judges the windows and the approval exactly as a real run does, so a
      refusal in check mode is the refusal a real run would get; the module changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the controller (C(delegate_to localhost)), so the decision uses one clock
    for every host. Needs Python 3.9 or later (zoneinfo) and the system time zone database.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Apply the release windows and approval policy
  release_policy:
    timezone: Europe/Berlin
    allowed_windows:
      - {start: "02:00", end: "04:00", days: mon-fri, name: night}
    refused_windows:
      - {start: "09:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
    approval_required: true
    approved_by: "{{ approved_by | default('') }}"
    force_reason: "{{ force_window | default('') }}"
  delegate_to: localhost
  run_once: true
  register: policy

- name: Record, without refusing, a rollback outside the windows
  release_policy:
    timezone: UTC
    refused_windows: ["22:00-06:00"]
    enforce: false
  delegate_to: localhost
"""

RETURN = r"""
proceed:
  description: Whether the release may go ahead.
  returned: always
  type: bool
  sample: true
forced:
  description: Whether the release goes ahead outside its windows because a reason was given.
  returned: always
  type: bool
  sample: false
force_reason:
  description: O(force_reason), or V(null).
  returned: always
  type: str
approval_required:
  description: O(approval_required).
  returned: always
  type: bool
approved_by:
  description: O(approved_by), or V(null).
  returned: always
  type: str
message:
  description: The decision in one line (the refusal, naming the window and the flag).
  returned: always
  type: str
  sample: "no release windows are configured"
problems:
  description: What the policy refuses (empty when it is met).
  returned: always
  type: list
  elements: str
window:
  description: The window decision.
  returned: always
  type: dict
  contains:
    allowed:
      description: Whether the time is inside the windows.
      type: bool
    local_time:
      description: The judged time in O(timezone).
      type: str
      sample: Mon 2026-11-23 10:12 CET
    timezone:
      description: O(timezone).
      type: str
    reason:
      description: Why the time is (not) allowed, with the next allowed time when refused.
      type: str
    refused_by:
      description: The refused window the time falls in, or V(null).
      type: str
    allowed_by:
      description: The allowed window the time falls in, or V(null).
      type: str
    next_opening:
      description: The next allowed minute (ISO 8601, local offset) when refused, or V(null).
      type: str
"""

from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_policy import (
    UTC,
    PolicyError,
    parse_now,
    policy_decision,
    window_decision,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            timezone=dict(type="str", default="UTC"),
            allowed_windows=dict(type="list", elements="raw", default=[]),
            refused_windows=dict(type="list", elements="raw", default=[]),
            force_reason=dict(type="str", default=""),
            approval_required=dict(type="bool", default=False),
            approved_by=dict(type="str", default=""),
            enforce=dict(type="bool", default=True),
            now=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        now = parse_now(params["now"], datetime.now(UTC))
        window = window_decision(
            now, params["timezone"], params["allowed_windows"], params["refused_windows"]
        )
        decision = policy_decision(
            window,
            params["force_reason"],
            params["approval_required"],
            params["approved_by"],
            enforce=params["enforce"],
        )
    except PolicyError as exc:
        module.fail_json(msg=f"release policy: {exc}; nothing was changed")
    result = dict(changed=False, **decision.as_dict())
    if not decision.proceed:
        module.fail_json(msg=decision.message + "; nothing was changed", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
