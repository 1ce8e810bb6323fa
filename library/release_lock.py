#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_lock
short_description: Take or release the one-release-at-a-time lock of an application
description:
  - Guarantees that only one release of an application runs at a time. Run it on the
    primary load-balancer host before the first step that changes anything, and again
    with O(state=absent) when the release (or its rollback) has finished.
  - The lock is a directory created with a single atomic C(mkdir), so two releases that
    start at the same moment cannot both get it. Inside it, C(owner.json) records the
    lock id, when the lock was taken, its lease, and the O(owner) details.
  - When the lock is held by another release the task fails at once, naming the holder,
    its release and version, how long it has held the lock and the command that breaks
    it. It never waits and never breaks a lock by itself, not even a stale one.
  - A lock directory without a readable C(owner.json) (a release crashed between
    creating the directory and writing the file) is reported as an incomplete lock.
version_added: "0.1.0"
options:
  path:
    description:
      - The lock directory, one per application, for example
        C(/var/lib/bluegreen/sampleapp/lock).
      - Missing parent directories are created with mode C(0755).
      - The directory itself must not exist while the lock is free; do not point this at
        a directory that holds anything else.
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock (or confirms that O(lock_id) still holds it).
      - V(absent) releases the lock held under O(lock_id), or any lock with O(force=true).
      - V(query) only reports the lock (RV(holder), RV(stale), RV(age_seconds)).
      - V(paused) keeps the lock held under O(lock_id) for a release that went live
        unverified and waits for a person. A paused lock never goes stale and is not
        taken over when its controller has gone; only a task given O(takeover_paused)
        (C(bluegreen promote), C(bluegreen rollback)) takes it over.
    type: str
    choices: [ absent, paused, present, query ]
    default: present
  owner:
    description:
      - Free-form details of who is releasing what, written into C(owner.json) and shown
        to anyone who finds the lock taken.
      - The keys C(user), C(controller_host), C(release_id), C(version) and C(pid) are
        used in messages; any others (for example C(command)) are kept as given.
      - May not contain C(lock_id), C(acquired_at) or C(lease_seconds), which the lock
        records itself.
      - Only used with O(state=present).
    type: dict
    default: {}
  lock_id:
    description:
      - With O(state=present), the id to give the new lock; when the lock is already held
        under this id the task succeeds without changing anything, so a play can take
        the lock again idempotently. When omitted, a random id is generated and returned.
      - With O(state=absent), the id of the lock to release; required unless O(force=true),
        so that a release can only drop its own lock.
    type: str
  force:
    description:
      - With O(state=absent), release the lock whatever its id, including an incomplete
        lock. This is what C(bluegreen lock break) does; use it only once you know the
        holding release is dead.
      - Not allowed with O(state=present), because taking over a lock would let two
        releases run at once. Break the lock first, then take it.
    type: bool
    default: false
  takeover_lock_id:
    description:
      - With O(state=present), take the lock over from a dead release. The lock must
        still carry this id (the one just examined), and either have outlived its lease
        or belong to a controller process that is gone (see O(controller) and
        O(holder_process_started)). The old lock directory is renamed aside and removed
        under an C(flock), so two controllers cannot both take it over.
      - The holder taken over is returned in RV(taken_over); the caller is expected to
        recover that release (the journal says how far it got).
    type: str
  takeover_paused:
    description:
      - With O(takeover_lock_id), take over the lock of a paused release (see
        V(paused) in O(state)); without it such a lock is refused, naming what to do.
    type: bool
    default: false
  takeover_held:
    description:
      - With O(takeover_lock_id), take over the lock of a release held before its switch
        (see O(held_until)); without it such a lock is refused, naming what to do. Only
        C(bluegreen promote) and C(bluegreen abort) finish a held release.
    type: bool
    default: false
  held_until:
    description:
      - With O(state=paused), the lock's release is held before its switch (traffic never
        moved) until this time (ISO 8601, UTC), when its hold expires. The lock records
        it, and only a task given O(takeover_held) takes it over.
    type: str
  controller:
    description:
      - With O(takeover_lock_id), the name of the controller asking (as recorded in
        the C(controller) key of O(owner)). Only when it equals the holder's
        controller can the holder's process be checked.
    type: str
  holder_process_started:
    description:
      - With O(takeover_lock_id), the start time the asking controller reads now for the
        holder's C(controller_pid) (C(ps -o lstart= -p PID)); empty when no such process
        runs. The holder is gone when this differs from its recorded
        C(controller_pid_started).
    type: str
  lease_seconds:
    description:
      - How long a release may hold the lock before the lock is reported as stale
        (RV(stale=true)). A stale lock is reported, never broken automatically.
      - Recorded in C(owner.json) when the lock is taken; when examining a lock taken by
        another release, that release's recorded lease applies, and this value only for
        an incomplete lock.
    type: int
    default: 3600
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the lock would be taken or released, without touching it.
  diff_mode:
    support: full
    details: Shows C(owner.json) before and after.
  platform:
    platforms: posix
notes:
  - The lock protects against concurrent releases driven from different controllers as
    long as they all use the same O(path) on the same host; run it on one host only
    (for example with C(run_once) and C(delegate_to) the primary load balancer).
seealso:
  - module: release_journal
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Take the release lock of sampleapp
  release_lock:
    path: /var/lib/bluegreen/sampleapp/lock
    lease_seconds: 3600
    owner:
      user: "{{ lookup('ansible.builtin.env', 'USER') }}"
      controller_host: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
      release_id: "{{ bluegreen_release_id }}"
      version: "{{ bluegreen_version }}"
      command: bluegreen release sampleapp 2.0.0
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true
  register: release_lock_taken

- name: Take the lock again after a retried play (same id, so nothing changes)
  release_lock:
    path: /var/lib/bluegreen/sampleapp/lock
    lock_id: "{{ release_lock_taken.lock_id }}"
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true

- name: Release the lock at the end of the release
  release_lock:
    path: /var/lib/bluegreen/sampleapp/lock
    state: absent
    lock_id: "{{ release_lock_taken.lock_id }}"
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true

- name: Break the lock of a release that is known to be dead
  release_lock:
    path: /var/lib/bluegreen/sampleapp/lock
    state: absent
    force: true
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true
"""

RETURN = r"""
path:
  description: The lock directory.
  returned: always
  type: str
  sample: /var/lib/bluegreen/sampleapp/lock
lock_id:
  description:
    - With O(state=present), the id of the lock the caller now holds (in check mode, the
      id it would get; a generated id differs on the real run).
    - With O(state=absent), the id of the lock that was released, or O(lock_id) when
      there was no lock.
  returned: success
  type: str
  sample: 3f6c1d2e9b8a4c7d8e5f60718293a4b5
acquired:
  description:
    - Whether the caller holds the lock after the task (in check mode, would hold it).
    - Always V(false) for O(state=absent).
  returned: always
  type: bool
  sample: true
holder:
  description:
    - The content of C(owner.json) for the lock this task took, kept, released or was
      refused by; V(null) when there was no lock, or the lock was incomplete.
  returned: always
  type: dict
  sample:
    lock_id: 3f6c1d2e9b8a4c7d8e5f60718293a4b5
    acquired_at: "2026-11-22T02:03:04Z"
    lease_seconds: 3600
    user: alice
    controller_host: ctl
    release_id: 20261122T020304-ab12
    version: 2.0.0
stale:
  description: Whether that lock had outlived its lease.
  returned: always
  type: bool
  sample: false
taken_over:
  description: The holder whose lock was taken over; V(null) when the lock was free by then.
  returned: with O(takeover_lock_id)
  type: dict
owner_gone:
  description: Whether the examined holder's controller process was found gone.
  returned: with O(takeover_lock_id)
  type: bool
age_seconds:
  description:
    - Whole seconds since that lock was taken (from C(acquired_at), or the directory's
      modification time for an incomplete lock); V(null) when there was no lock.
  returned: always
  type: int
  sample: 12
"""

import contextlib
import fcntl
import os
import tempfile
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_lock import (
    OWNER_FILE,
    UTC,
    LockError,
    ObservedLock,
    acquire_refused_message,
    decide_acquire,
    decide_pause,
    decide_release,
    decide_takeover,
    lock_age_seconds,
    lock_is_stale,
    new_lock_id,
    observe_lock,
    owner_json,
    owner_process_gone,
    owner_record,
    paused_record,
    release_refused_message,
    takeover_refused_message,
)

# Temp files are named after owner.json so that a crash mid-write leaves only files that
# a release may remove.
TEMP_PREFIX = "." + OWNER_FILE + "."
# How often to look again when the lock disappears between a failed mkdir and the read.
ACQUIRE_ATTEMPTS = 3


def read_lock(path: str) -> ObservedLock:
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return observe_lock(False, None, None)
    if not os.path.isdir(path):
        raise LockError(
            f"{path} exists but is not a directory, so it cannot be a release lock;"
            " remove it or choose another path"
        )
    try:
        with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as owner_file:
            owner_text: str | None = owner_file.read()
    except FileNotFoundError:
        owner_text = None
    # Released between the stat and the read: that is a free lock, not an incomplete one.
    if owner_text is None and not os.path.isdir(path):
        return observe_lock(False, None, None)
    return observe_lock(True, owner_text, mtime)


def write_owner(module: AnsibleModule, path: str, record: dict) -> None:
    """Replace owner.json of a held lock atomically."""
    fd, temp_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path)
    with os.fdopen(fd, "w", encoding="utf-8") as temp_file:
        temp_file.write(owner_json(record))
        temp_file.flush()
        os.fsync(temp_file.fileno())
    os.chmod(temp_path, 0o644)
    module.atomic_move(temp_path, os.path.join(path, OWNER_FILE))


def create_lock(module: AnsibleModule, path: str, record: dict) -> None:
    """mkdir the lock (raises FileExistsError when taken), then write owner.json atomically."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    os.mkdir(path, 0o755)
    try:
        write_owner(module, path, record)
    except BaseException:
        # Do not leave an incomplete lock behind because owner.json could not be written.
        with contextlib.suppress(OSError, LockError):
            _remove_lock_dir(path)
        raise


def _remove_lock_dir(path: str) -> None:
    """Remove owner.json, leftover temp files and the directory, and nothing else."""
    names = os.listdir(path)
    foreign = sorted(n for n in names if n != OWNER_FILE and not n.startswith(TEMP_PREFIX))
    if foreign:
        raise LockError(
            f"refusing to remove the release lock {path}: it contains files the lock did not"
            f" create ({', '.join(foreign)}); check that path points at the lock directory"
        )
    for name in names:
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def lock_facts(observed: ObservedLock, now: datetime, lease_seconds: int) -> dict:
    return {
        "holder": observed.holder,
        "stale": lock_is_stale(observed, now, lease_seconds),
        "age_seconds": lock_age_seconds(observed, now),
    }


def diff_of(path: str, before: dict | None, after: dict | None) -> dict:
    header = os.path.join(path, OWNER_FILE)
    return {
        "before": owner_json(before),
        "after": owner_json(after),
        "before_header": header,
        "after_header": header,
    }


def refuse(module: AnsibleModule, msg: str, observed: ObservedLock, now: datetime, **extra) -> None:
    """Fail the task with the lock's facts, so a caller can still read who holds it."""
    module.fail_json(
        msg=msg,
        path=module.params["path"],
        acquired=False,
        **extra,
        **lock_facts(observed, now, module.params["lease_seconds"]),
    )


def take_over(module: AnsibleModule, now: datetime) -> dict:
    """Replace a dead release's lock with ours, serialised by an flock beside the lock."""
    params = module.params
    path = params["path"]
    lock_id = params["lock_id"] or new_lock_id()
    record = owner_record(params["owner"], lock_id, now, params["lease_seconds"])
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path + ".takeover", "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        observed = read_lock(path)
        gone = owner_process_gone(
            observed.holder, params["controller"] or "", params["holder_process_started"] or None
        )
        stale = lock_is_stale(observed, now, params["lease_seconds"])
        decision = decide_takeover(
            observed,
            params["takeover_lock_id"],
            gone,
            stale,
            params["takeover_paused"],
            params["takeover_held"],
        )
        if decision.action == "refuse":
            refuse(
                module,
                takeover_refused_message(
                    path, observed, now, params["lease_seconds"], params["takeover_lock_id"]
                ),
                observed,
                now,
                taken_over=None,
            )
        if not module.check_mode:
            if decision.action == "takeover":
                aside = f"{path}.dead-{observed.lock_id}"
                os.rename(path, aside)
                _remove_lock_dir(aside)
            create_lock(module, path, record)
    return dict(
        changed=True,
        acquired=True,
        lock_id=lock_id,
        holder=record,
        stale=False,
        age_seconds=0,
        taken_over=observed.holder if decision.action == "takeover" else None,
        owner_gone=gone,
        diff=diff_of(path, observed.holder, record),
    )


def pause(module: AnsibleModule, now: datetime) -> dict:
    """Keep our lock for a release that waits for a person."""
    params = module.params
    path = params["path"]
    observed = read_lock(path)
    decision = decide_pause(observed, params["lock_id"])
    if decision.action == "refuse":
        refuse(
            module,
            release_refused_message(
                path, observed, now, params["lease_seconds"], params["lock_id"]
            ).replace("so it was not released", "so it was not paused"),
            observed,
            now,
        )
    record = (
        paused_record(observed.holder or {}, now, params["held_until"])
        if decision.changed
        else observed.holder
    )
    if decision.changed and not module.check_mode:
        write_owner(module, path, record or {})
    return dict(
        changed=decision.changed,
        acquired=True,
        lock_id=observed.lock_id,
        holder=record,
        stale=False,
        age_seconds=lock_age_seconds(observed, now),
        diff=diff_of(path, observed.holder, record),
    )


def query(module: AnsibleModule, now: datetime) -> dict:
    observed = read_lock(module.params["path"])
    return dict(
        changed=False,
        acquired=False,
        lock_id=observed.lock_id,
        diff=diff_of(module.params["path"], observed.holder, observed.holder),
        **lock_facts(observed, now, module.params["lease_seconds"]),
    )


def acquire(module: AnsibleModule, now: datetime) -> dict:
    params = module.params
    path = params["path"]
    if params["takeover_lock_id"]:
        return take_over(module, now)
    lock_id = params["lock_id"] or new_lock_id()
    record = owner_record(params["owner"], lock_id, now, params["lease_seconds"])
    for _attempt in range(ACQUIRE_ATTEMPTS):
        observed = read_lock(path)
        decision = decide_acquire(observed, params["lock_id"])
        if decision.action == "keep":
            return dict(
                changed=False,
                acquired=True,
                lock_id=lock_id,
                diff=diff_of(path, observed.holder, observed.holder),
                **lock_facts(observed, now, params["lease_seconds"]),
            )
        if decision.action == "refuse":
            refuse(
                module,
                acquire_refused_message(path, observed, now, params["lease_seconds"]),
                observed,
                now,
            )
        if not module.check_mode:
            try:
                create_lock(module, path, record)
            except FileExistsError:
                # Another release took it between our read and our mkdir: look again.
                continue
        return dict(
            changed=True,
            acquired=True,
            lock_id=lock_id,
            holder=record,
            stale=False,
            age_seconds=0,
            diff=diff_of(path, None, record),
        )
    raise LockError(
        f"the release lock {path} was taken and released {ACQUIRE_ATTEMPTS} times while"
        " this task tried to take it; another tool is racing for it, try again"
    )


def release(module: AnsibleModule, now: datetime) -> dict:
    params = module.params
    path = params["path"]
    observed = read_lock(path)
    decision = decide_release(observed, params["lock_id"], params["force"])
    if decision.action == "refuse":
        refuse(
            module,
            release_refused_message(
                path, observed, now, params["lease_seconds"], params["lock_id"]
            ),
            observed,
            now,
        )
    if decision.action == "release" and not module.check_mode:
        _remove_lock_dir(path)
    return dict(
        changed=decision.changed,
        acquired=False,
        lock_id=observed.lock_id or params["lock_id"],
        diff=diff_of(path, observed.holder, None),
        **lock_facts(observed, now, params["lease_seconds"]),
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(
                type="str", default="present", choices=["absent", "paused", "present", "query"]
            ),
            owner=dict(type="dict", default={}),
            lock_id=dict(type="str"),
            force=dict(type="bool", default=False),
            takeover_lock_id=dict(type="str"),
            takeover_paused=dict(type="bool", default=False),
            takeover_held=dict(type="bool", default=False),
            held_until=dict(type="str"),
            controller=dict(type="str"),
            holder_process_started=dict(type="str"),
            lease_seconds=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["lease_seconds"] <= 0:
        module.fail_json(msg=f"lease_seconds must be positive, got {params['lease_seconds']}")
    if params["state"] == "present" and params["force"]:
        module.fail_json(
            msg="force is only for state=absent: taking over a held lock would let two"
            " releases run at once; break the lock with state=absent force=true, then take it"
        )
    if params["state"] == "absent" and not (params["lock_id"] or params["force"]):
        module.fail_json(
            msg="state=absent needs the lock_id returned when the lock was taken"
            " (or force=true to break a lock whatever its id)"
        )
    if params["state"] == "paused" and not params["lock_id"]:
        module.fail_json(
            msg="state=paused needs the lock_id returned when the lock was taken: only the"
            " release that holds the lock can keep it paused"
        )

    now = datetime.now(UTC)
    try:
        actions = {"present": acquire, "absent": release, "query": query, "paused": pause}
        result = actions[params["state"]](module, now)
    except PermissionError as exc:
        module.fail_json(
            msg=f"release lock {params['path']}: {exc}; run the task with become: true"
            " or give the remote user write access to the lock's parent directory",
            path=params["path"],
        )
    except (LockError, OSError) as exc:
        module.fail_json(msg=f"release lock {params['path']}: {exc}", path=params["path"])
    if not module._diff:
        result.pop("diff")
    module.exit_json(path=params["path"], **result)


if __name__ == "__main__":
    main()
