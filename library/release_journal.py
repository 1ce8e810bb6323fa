#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_journal
short_description: Append one step of a release to the release journal, or read it
description:
  - Appends one record to an append-only journal in JSON lines format, one line per
    step of a release (preflight, lock, deploy, migrate, health, switch, verify,
    rollback, unlock). The release report is rendered from this journal, so each record
    carries the step's timing and the evidence behind its outcome.
  - The record is written with one C(write) on a file opened for appending, under an
    exclusive C(flock), then C(fsync)ed, so records from concurrent writers never
    interleave and a reader never sees half of a record that was acknowledged.
    The file is never rewritten.
  - If a crash cut the file's last line short, the new record starts on a new line, so
    the fragment stays on a line of its own and readers skip it.
  - Strings given in O(redact) are replaced by C(********) in O(message) and
    O(evidence) before anything is written, so secrets never reach the journal.
  - With O(state=read) it appends nothing and returns each release's state as the
    journal tells it (prepared, active, verified, rolled-back, bad, failed,
    interrupted), the release a dead controller left unfinished, and the versions a
    rollback must not go back to.
version_added: "0.1.0"
options:
  state:
    description:
      - V(present) appends one record.
      - V(read) reads the journal (a missing file is an empty journal) and returns
        RV(releases), RV(unfinished) and RV(rollback_refused_versions).
    type: str
    choices: [ present, read ]
    default: present
  unfinished_lock_id:
    description:
      - With O(state=read), report as RV(unfinished) only the interrupted release that
        held this lock (the lock a new command has just taken over from a dead
        controller). Without it, the newest interrupted release.
    type: str
  exclude_release_id:
    description:
      - With O(state=read), the command that is reading, which is open itself and so
        never RV(unfinished).
    type: str
  allow_unverified:
    description:
      - With O(state=read), leave out of RV(rollback_refused_versions) the versions that
        were never verified but never marked bad either (a release that went live
        unverified, or one recovered before it was judged). The operator accepts them as
        a rollback target with C(bluegreen rollback --allow-unverified).
    type: bool
    default: false
  live_colours:
    description:
      - With O(state=read), the live colour each load balancer reports now (load
        balancer name to colour). With O(recovery_command), RV(recovery) says what to do
        about RV(unfinished) given that state.
    type: dict
    default: {}
  recovery_command:
    description:
      - With O(state=read), the command that found RV(unfinished). V(release) resumes a
        release that had switched every load balancer (its signals are judged again),
        V(rollback) rolls it back. Either rolls back a switch cut short and puts the
        idle colour back when traffic never moved.
    type: str
    choices: [ release, rollback ]
  limit:
    description:
      - With O(state=read), return only the newest O(limit) releases in RV(releases)
        (all of them are still used to compute the other results). V(0) returns all.
    type: int
    default: 50
  path:
    description:
      - The journal file, one per application, for example
        C(/var/lib/bluegreen/sampleapp/journal.jsonl).
      - Missing parent directories are created with mode C(0755); the file is created
        when missing.
    type: path
    required: true
  release_id:
    description:
      - The release this step belongs to; every record of a release carries the same id.
      - Required with O(state=present).
    type: str
  step:
    description:
      - The step of the release state machine, for example V(preflight), V(lock),
        V(snapshot), V(deploy), V(migrate), V(health), V(switch), V(verify),
        V(rollback) or V(unlock).
      - Required with O(state=present).
    type: str
  outcome:
    description:
      - V(started) marks the beginning of a step; V(ok), V(failed) and V(skipped) its
        end; V(info) records a fact that is not a step outcome.
      - Required with O(state=present).
    type: str
    choices: [ started, ok, failed, skipped, info ]
  started_at:
    description:
      - When the step started, as an ISO-8601 time; one without an offset is taken as
        UTC. Stored in UTC with millisecond precision.
      - Defaults to now for O(outcome=started). For other outcomes, give it to get
        C(duration_s) computed.
    type: str
  finished_at:
    description:
      - When the step finished, as an ISO-8601 time; one without an offset is taken as
        UTC.
      - Defaults to now for every outcome except V(started), which must not have one.
      - Must not be earlier than O(started_at).
    type: str
  host:
    description:
      - The host the step was about, when that is not the host the task runs on (the
        journal lives on one host; the step may have acted on another).
    type: str
  message:
    description:
      - One line an operator reads in the report, for example why a step failed.
    type: str
  evidence:
    description:
      - The facts behind the outcome, for example checksums, the colours before and
        after a switch, versions, migration revisions, or an excerpt of a command's
        output. Kept as given, after redaction.
    type: dict
    default: {}
  redact:
    description:
      - Secrets (passwords, tokens, database URLs) that must not reach the journal.
        Every occurrence of any of them in O(message) and O(evidence), in keys and
        values, is replaced by C(********) before the record is written.
      - Never logged or shown in the task result.
    type: list
    elements: str
    default: []
  mode:
    description:
      - The permissions of the journal file, as for M(ansible.builtin.file), applied on
        every run.
      - Quote it (V('0640')) or give it with a leading zero so YAML reads it as octal.
    type: raw
    default: '0640'
  controller_path:
    description:
      - Also append the same record (the line the host wrote, byte for byte) to this
        file on the controller, in the controller's own process, with the same O(mode).
        The release roles use it for the controller's copy of the journal, which history
        and reports read without a round trip.
      - If the host cannot be reached or its append fails, the controller's copy gets the
        record built on the controller, so the evidence is kept in one place at least; the
        task's result stays the host's.
      - Done by the action plugin of the same name; with O(state=read) it is ignored.
    type: path
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Builds and returns the record, reports C(changed=true) since a real run
      always appends, and writes nothing.
  diff_mode:
    support: full
    details: Shows the line that is (or would be) appended.
  platform:
    platforms: posix
notes:
  - Run it on the host that keeps the journal (for example with C(delegate_to) the
    primary load balancer), so all records of a release land in one file.
seealso:
  - module: release_lock
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Record that the switch started
  release_journal:
    path: /var/lib/bluegreen/sampleapp/journal.jsonl
    release_id: "{{ bluegreen_release_id }}"
    step: switch
    outcome: started
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true
  register: journal_switch_started

- name: Record the switch with its evidence
  release_journal:
    path: /var/lib/bluegreen/sampleapp/journal.jsonl
    release_id: "{{ bluegreen_release_id }}"
    step: switch
    outcome: ok
    started_at: "{{ journal_switch_started.record.started_at }}"
    host: "{{ inventory_hostname }}"
    message: traffic moved from blue to green
    evidence:
      previous_colour: "{{ nginx_switch.previous_colour }}"
      active_colour: "{{ nginx_switch.active_colour }}"
      switch_ms: "{{ nginx_switch.switch_ms }}"
  delegate_to: "{{ groups['lb'] | first }}"

- name: Record a failed migration without leaking the database password
  release_journal:
    path: /var/lib/bluegreen/sampleapp/journal.jsonl
    release_id: "{{ bluegreen_release_id }}"
    step: migrate
    outcome: failed
    message: "{{ migration_result.msg }}"
    evidence:
      database_url: "{{ sampleapp_database_url }}"
      stderr: "{{ migration_result.stderr | default('') | truncate(2000) }}"
    redact:
      - "{{ sampleapp_database_password }}"
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true

- name: Read the journal before a rollback
  release_journal:
    path: /var/lib/bluegreen/sampleapp/journal.jsonl
    state: read
    limit: 10
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true
  register: journal
"""

RETURN = r"""
path:
  description: The journal file.
  returned: always
  type: str
  sample: /var/lib/bluegreen/sampleapp/journal.jsonl
controller_copy:
  description:
    - With O(controller_path), where the controller's copy got the record (C(path),
      C(line_number)), or why it did not (C(path), C(error); the task then fails).
  returned: when O(controller_path) is set and O(state=present)
  type: dict
  sample: {"path": "state/journal/lab/sampleapp.jsonl", "line_number": 42}
record:
  description: The record appended (in check mode, that would be appended), after redaction.
  returned: success
  type: dict
  contains:
    ts:
      description: When the record was written, UTC.
      type: str
      sample: "2026-11-22T02:05:10.412Z"
    release_id:
      description: O(release_id).
      type: str
      sample: 20261122T020304-ab12
    step:
      description: O(step).
      type: str
      sample: switch
    outcome:
      description: O(outcome).
      type: str
      sample: ok
    started_at:
      description: O(started_at) normalised to UTC; V(null) when not known.
      type: str
      sample: "2026-11-22T02:05:08.000Z"
    finished_at:
      description: O(finished_at) normalised to UTC; V(null) for O(outcome=started).
      type: str
      sample: "2026-11-22T02:05:10.412Z"
    duration_s:
      description: Seconds between C(started_at) and C(finished_at); V(null) unless both are known.
      type: float
      sample: 2.412
    host:
      description: O(host), or V(null).
      type: str
      sample: lb1
    message:
      description: O(message) after redaction, or V(null).
      type: str
      sample: traffic moved from blue to green
    evidence:
      description: O(evidence) after redaction.
      type: dict
      sample: {"previous_colour": "blue", "active_colour": "green"}
line_number:
  description: The 1-based line of the journal that holds the record (in check mode, would hold it).
  returned: success and O(state=present)
  type: int
  sample: 42
releases:
  description:
    - The newest O(limit) releases, rollbacks and other commands, oldest first, each
      folded from its records.
  returned: success and O(state=read)
  type: list
  elements: dict
  sample:
    - release_id: 20261122T020304Z-ab12cd
      command: release
      state: verified
      version: 2.0.0
      colour: green
      previous_colour: blue
      previous_version: 1.0.0
      outcome: released
      started_at: "2026-11-22T02:03:04.120Z"
      finished_at: "2026-11-22T02:04:01.310Z"
unfinished:
  description:
    - The command whose controller died before it closed (it took the lock, then
      nothing recorded its end); V(null) when there is none.
  returned: success and O(state=read)
  type: dict
recovery:
  description:
    - What to do about RV(unfinished) (O(recovery_command) and O(live_colours) given),
      as C(action) (V(resume), V(rollback), V(restore_idle) or V(close)), the colour
      traffic must end on (C(traffic_colour)) and the C(reason) in words.
  returned: success, O(state=read) and O(recovery_command) set and RV(unfinished) not null
  type: dict
  sample: {"action": "rollback", "traffic_colour": "blue", "reason": "the switch was cut short"}
rollback_refused_versions:
  description:
    - Versions the journal knows as bad or never verified, with the reason; a rollback
      refuses a colour that runs one of them. With O(allow_unverified), bad ones only.
  returned: success and O(state=read)
  type: dict
  sample: {"2.0.1+crash": "marked bad"}
paused:
  description:
    - The release that went live unverified and waits for a person (C(bluegreen promote)
      or C(bluegreen rollback)), as in RV(releases); V(null) when none does.
  returned: success and O(state=read)
  type: dict
held:
  description:
    - The release held before its switch that waits for a person (C(bluegreen promote)
      switches it, C(bluegreen abort) ends it), as in RV(releases), with C(held_until);
      V(null) when none does.
  returned: success and O(state=read)
  type: dict
version_states:
  description:
    - Each version's newest release, not counting ones that found it live already. Its
      C(state) (V(verified), V(unverified), V(bad)...), C(release_id) and C(message).
  returned: success and O(state=read)
  type: dict
  sample: {"2.0.0": {"state": "unverified", "release_id": "20261206T1015Z-0a1b2c"}}
last_verified:
  description:
    - The newest release that passed its analysis and was not found bad since; its
      snapshot is kept by retention. V(null) when there is none.
  returned: success and O(state=read)
  type: dict
skipped_lines:
  description: Lines that are not records (a write cut short by a crash), with the reason.
  returned: success and O(state=read)
  type: list
  elements: dict
"""

import fcntl
import os
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_history import (
    held_release,
    last_verified,
    paused_release,
    recovery_action,
    rollback_refused_versions,
    summarize,
    unfinished_release,
    version_states,
)
from ansible.module_utils.release_journal import (
    OUTCOMES,
    UTC,
    JournalError,
    append_line,
    build_entry,
    next_line_number,
    read_journal,
)


def read_records(path: str) -> list[str]:
    """The journal's lines, read under a shared flock; a missing journal is empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, encoding="utf-8", errors="replace") as journal:
        fcntl.flock(journal.fileno(), fcntl.LOCK_SH)
        return journal.readlines()


def read(module: AnsibleModule) -> None:
    params = module.params
    path = params["path"]
    try:
        records = read_journal(read_records(path))
    except OSError as exc:
        module.fail_json(msg=f"cannot read the release journal {path}: {exc}", path=path)
    summaries = summarize(records)
    unfinished = unfinished_release(
        records, params["unfinished_lock_id"], params["exclude_release_id"]
    )
    limit = params["limit"]
    verified = last_verified(summaries)
    recovery = None
    if unfinished and params["recovery_command"]:
        recovery = recovery_action(
            unfinished, params["live_colours"], params["recovery_command"]
        ).as_dict()
    module.exit_json(
        changed=False,
        path=path,
        recovery=recovery,
        releases=[s.as_dict() for s in (summaries[-limit:] if limit > 0 else summaries)],
        unfinished=unfinished.as_dict() if unfinished else None,
        rollback_refused_versions=rollback_refused_versions(summaries, params["allow_unverified"]),
        last_verified=verified.as_dict() if verified else None,
        version_states=version_states(summaries),
        paused=paused.as_dict() if (paused := paused_release(summaries)) else None,
        held=held.as_dict() if (held := held_release(summaries)) else None,
        skipped_lines=[
            {"line_number": line.line_number, "reason": line.reason} for line in records.skipped
        ],
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "read"]),
            unfinished_lock_id=dict(type="str"),
            live_colours=dict(type="dict", default={}),
            exclude_release_id=dict(type="str"),
            allow_unverified=dict(type="bool", default=False),
            recovery_command=dict(type="str", choices=["release", "rollback"]),
            limit=dict(type="int", default=50),
            release_id=dict(type="str"),
            step=dict(type="str"),
            outcome=dict(type="str", choices=list(OUTCOMES)),
            started_at=dict(type="str"),
            finished_at=dict(type="str"),
            host=dict(type="str"),
            message=dict(type="str"),
            evidence=dict(type="dict", default={}),
            redact=dict(type="list", elements="str", default=[], no_log=True),
            mode=dict(type="raw", default="0640"),
            # The action plugin takes it; here, without the plugin, it is ignored.
            controller_path=dict(type="path"),
        ),
        required_if=[("state", "present", ("release_id", "step", "outcome"))],
        supports_check_mode=True,
    )
    if module.params["state"] == "read":
        read(module)
    params = module.params
    path = params["path"]
    try:
        entry = build_entry(
            release_id=params["release_id"],
            step=params["step"],
            outcome=params["outcome"],
            now=datetime.now(UTC),
            started_at=params["started_at"],
            finished_at=params["finished_at"],
            host=params["host"],
            message=params["message"],
            evidence=params["evidence"],
            redact_values=params["redact"],
        )
        line = entry.to_line()
        line_number = next_line_number(path, line) if module.check_mode else append_line(path, line)
    except JournalError as exc:
        module.fail_json(msg=f"release journal {path}: {exc}", path=path)
    except OSError as exc:
        module.fail_json(
            msg=f"cannot append to the release journal {path}: {exc}; the step's record is"
            " lost unless the task is retried, check the path, its permissions and free space",
            path=path,
        )
    module.set_mode_if_different(path, params["mode"], True)

    result = dict(changed=True, path=path, record=entry.as_dict(), line_number=line_number)
    if module._diff:
        result["diff"] = dict(
            before="",
            after=line,
            before_header=path,
            after_header=f"{path} (line {line_number} appended)",
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
