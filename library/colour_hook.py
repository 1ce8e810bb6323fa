#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: colour_hook
short_description: Run a service's release hooks of one point in a colour's environment
description:
  - Runs, in order, the hooks of O(hooks) whose O(hooks[].at) is O(at) on this host, each
    with C(/bin/sh -c) in the colour's environment, as the colour's systemd unit would run
    it. The hooks are commands a team needs at that point of a release, for example
    C(django-admin collectstatic --noinput) after the install.
  - The environment is the unit's. The hook runs as O(user) and O(group) (with the
    user's supplementary groups), in the release directory, with C(HOME), C(USER),
    C(LOGNAME) and C(SHELL) of the account, C(PATH) with the release's C(venv/bin) first,
    every variable of O(env_file) (read on the host, so its secrets never pass through
    Ansible) and the hook's O(hooks[].environment) on top.
  - A hook runs on every host of O(colour) in O(play_hosts), or with O(hooks[].once) on
    the first of them only. A host that does not run O(colour) runs nothing.
  - A hook that does not end within O(hooks[].timeout) seconds is stopped with
    C(SIGTERM), then C(SIGKILL), sent to its whole process group; processes it leaves
    behind when it ends are killed too.
  - The output (standard output and error together) is kept as an excerpt of its last 20
    lines, each cut to 300 characters, with every secret replaced by C(********) first.
    The secrets are the values of O(secret_names) in O(env_file), the values of
    secret-looking variables of O(env_file) (names with PASSWORD, SECRET, TOKEN, KEY,
    DATABASE_URL...) and every value of O(hooks[].environment).
  - At V(after_install) and V(before_switch) the first failed hook stops the hooks of the
    host, and RV(stops_release) tells the caller to stop the release with RV(message).
    At V(after_switch) and V(after_rollback) every hook runs, a failure only fills
    RV(warning), and the module never fails, since traffic moved already.
  - The task does not fail because a hook failed, so its caller can journal every run
    first (RV(journal)). It fails when the hooks cannot run at all at V(after_install) or
    V(before_switch) (no env file, no release directory, no such user).
  - The decisions are in module_utils/hooks.py.
version_added: "0.1.0"
options:
  at:
    description:
      - The point of the release whose hooks run.
    type: str
    required: true
    choices: [after_install, before_switch, after_switch, after_rollback]
  hooks:
    description:
      - Every hook of the service (C(bluegreen_service_hooks)); only those at O(at) run.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Unique name of the hook, shown in messages and the journal.
        type: str
        required: true
      at:
        description:
          - When the hook runs.
        type: str
        required: true
        choices: [after_install, before_switch, after_switch, after_rollback]
      command:
        description:
          - Command line run with C(/bin/sh -c), from the release directory.
        type: str
        required: true
      once:
        description:
          - Run on the first host of the colour only (creating an admin user), not on
            every host of the colour.
        type: bool
        default: false
      timeout:
        description:
          - Seconds after which the hook is stopped and counts as failed.
        type: int
        default: 300
      environment:
        description:
          - More variables for the hook, on top of O(env_file). Their values are secrets,
            hidden from the task's output (C(no_log)) and from the excerpt.
        type: dict
        default: {}
  colour:
    description:
      - The colour whose environment the hooks run in.
    type: str
    required: true
    choices: [blue, green]
  release_dir:
    description:
      - The release directory the hooks run in, whose C(venv/bin) is first on C(PATH).
      - Defaults to the release the colour's link in O(colours_dir) points at (after a
        rollback, the release the colour now live runs).
      - Its last path component is the version named in messages and the journal.
    type: path
  colours_dir:
    description:
      - Directory holding one link per colour to the release it runs.
      - Required when O(release_dir) is not given.
    type: path
  env_file:
    description:
      - The colour's environment file (systemd C(EnvironmentFile) syntax), the one its
        unit starts with.
    type: path
    required: true
  user:
    description:
      - The user the hooks run as, the one the colour's unit runs as. The task must run
        as root to switch to it, unless it runs as that user already.
    type: str
    required: true
  group:
    description:
      - The group the hooks run as; the user's primary group by default.
    type: str
  secret_names:
    description:
      - Variables of O(env_file) whose values are secrets (C(bluegreen_service_secrets)
        and the database URL's variable), replaced by C(********) in every excerpt.
    type: list
    elements: str
    default: []
  host:
    description:
      - Name of this host as O(play_hosts) names it (the inventory name); the host's own
        name by default.
    type: str
  play_hosts:
    description:
      - Every host of the play, in order, with the colours it runs (host to list of
        colours). A host that does not run O(colour) runs no hook, and a hook with
        O(hooks[].once) runs on the first host that does.
      - Empty means this host is the colour's only host.
    type: dict
    default: {}
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing runs; RV(runs) lists what would run and RV(changed) is true when
        something would.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Collect the static files of the new release before the idle colour starts
  colour_hook:
    at: after_install
    hooks:
      - name: collectstatic
        at: after_install
        command: django-admin collectstatic --noinput
    colour: green
    release_dir: /opt/shop/releases/2.0.0
    env_file: /etc/shop/green.env
    user: shop
    secret_names: [DJANGO_SECRET_KEY, DATABASE_URL]
    host: "{{ inventory_hostname }}"
    play_hosts:
      app1: [green]
      app2: [green]
  register: hooks

- name: Create the admin user once, with its password from vault
  colour_hook:
    at: after_install
    hooks:
      - name: createsuperuser
        at: after_install
        once: true
        command: >-
          django-admin createsuperuser --noinput --username admin --email ops@example.com
          || true
        environment:
          DJANGO_SUPERUSER_PASSWORD: "{{ vault_shop_admin_password }}"
    colour: green
    release_dir: /opt/shop/releases/2.0.0
    env_file: /etc/shop/green.env
    user: shop
    host: "{{ inventory_hostname }}"
    play_hosts:
      app1: [green]
      app2: [green]
  no_log: true

- name: Warm the cache of the colour now live after a rollback, in the release it runs
  colour_hook:
    at: after_rollback
    hooks: "{{ bluegreen_service_hooks }}"
    colour: blue
    colours_dir: /opt/shop/colours
    env_file: /etc/shop/blue.env
    user: shop

- name: Stop the release when a hook failed
  ansible.builtin.fail:
    msg: "{{ hooks.message }}"
  when: hooks.stops_release
"""

RETURN = r"""
changed:
  description: Whether a hook ran (in check mode, whether one would run).
  type: bool
  returned: always
at:
  description: The point whose hooks ran.
  type: str
  returned: always
colour:
  description: The colour whose environment they ran in.
  type: str
  returned: always
version:
  description:
    - The version of the release they ran in (the release directory's name); '' when unknown.
  type: str
  returned: always
  sample: 2.0.0
release_dir:
  description: The release directory they ran in; '' when none was needed or it is unknown.
  type: str
  returned: always
runs:
  description:
    - One entry per hook that ran on this host, in order (in check mode, per hook that
      would run, with C(ran) false).
  type: list
  elements: dict
  returned: always
  contains:
    name:
      description: The hook's name.
      type: str
    at:
      description: Its point of the release.
      type: str
    host:
      description: The host it ran on.
      type: str
    colour:
      description: The colour whose environment it ran in.
      type: str
    version:
      description: The version of the release it ran in.
      type: str
    ran:
      description: Whether it ran (false in check mode).
      type: bool
    ok:
      description: Whether it ran and exited with 0 in time.
      type: bool
    exit_code:
      description: Its exit status; negative for a signal; null when it timed out or did not run.
      type: int
    timed_out:
      description: Whether it was stopped because it outlived its timeout.
      type: bool
    duration_s:
      description: Seconds it ran.
      type: float
    excerpt:
      description:
        - Its last 20 lines of output, each cut to 300 characters, secrets replaced by
          C(********).
      type: list
      elements: str
  sample:
    - {name: collectstatic, at: after_install, host: app1, colour: green, version: 2.0.0,
       ran: true, ok: false, exit_code: 1, timed_out: false, duration_s: 0.84,
       excerpt: ["django.core.exceptions.ImproperlyConfigured: STATIC_ROOT is not set"]}
not_run:
  description: Hooks of this host that did not run because a hook before them failed.
  type: list
  elements: str
  returned: always
journal:
  description:
    - One journal record per hook that ran, with C(host), C(message) and C(evidence) (its
      entry of RV(runs) without C(ran)).
  type: list
  elements: dict
  returned: always
ok:
  description: Whether every hook that ran succeeded (true when none ran).
  type: bool
  returned: always
stops_release:
  description:
    - A hook failed at V(after_install) or V(before_switch); the caller stops the release
      with RV(message).
  type: bool
  returned: always
warning:
  description:
    - At V(after_switch) and V(after_rollback), what failed (the same text as
      RV(message)); '' when nothing did.
  type: str
  returned: always
message:
  description:
    - What the hooks did on this host. A failure names the hook, the host, the exit status
      (or the timeout), what it means for the release and the last lines of its output.
  type: str
  returned: always
  sample: >-
    after_install hook collectstatic failed on app1 (green 2.0.0): exit 1 after 0.8 s.
    The release stops: the colour was not started and traffic did not move. Fix the hook
    or the release, then release again. Last lines of its output: ImproperlyConfigured
"""

import contextlib
import grp
import os
import pwd
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.env_file import parse_env_file
from ansible.module_utils.env_file import secret_values as secret_looking_values
from ansible.module_utils.hooks import (
    POINTS,
    Hook,
    HookError,
    HookReport,
    HookRun,
    blocks,
    excerpt,
    hook_environment,
    hooks_for_host,
    hooks_from,
    journal_evidence,
    problem_report,
    report,
    run_message,
    secret_values,
)
from ansible.module_utils.release_journal import redact

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "at": {"type": "str", "required": True, "choices": list(POINTS)},
    "hooks": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "at": {"type": "str", "required": True, "choices": list(POINTS)},
            "command": {"type": "str", "required": True},
            "once": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 300},
            "environment": {"type": "dict", "default": {}, "no_log": True},
        },
    },
    "colour": {"type": "str", "required": True, "choices": ["blue", "green"]},
    "release_dir": {"type": "path"},
    "colours_dir": {"type": "path"},
    "env_file": {"type": "path", "required": True},
    "user": {"type": "str", "required": True},
    "group": {"type": "str"},
    "secret_names": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "host": {"type": "str"},
    "play_hosts": {"type": "dict", "default": {}},
}

# Output kept while a hook runs: its end, enough for the excerpt of long lines.
OUTPUT_TAIL_BYTES = 256 * 1024
# After SIGTERM, how long a timed-out hook has to end before SIGKILL.
TERM_GRACE_S = 5.0
# After the hook ended, how long processes it left holding its output may keep writing.
DRAIN_S = 1.0


class HookProblem(Exception):
    """The hooks cannot run at all on this host; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    """Who a hook runs as: Popen's identity arguments and the account's variables."""

    popen: dict[str, Any]
    variables: dict[str, str]


def account(user: str, group: str | None) -> Account:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise HookProblem(
            f"the user {user} does not exist; it is the service's user, created when a"
            " release is deployed"
        ) from None
    try:
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    except KeyError:
        raise HookProblem(f"the group {group} does not exist") from None
    variables = {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user, "SHELL": entry.pw_shell}
    if os.geteuid() == entry.pw_uid:
        return Account({}, variables)
    if os.geteuid() != 0:
        raise HookProblem(
            f"the task runs as uid {os.geteuid()} and cannot switch to {user}; run it as"
            " root (become: true)"
        )
    groups = os.getgrouplist(user, gid)
    return Account({"user": entry.pw_uid, "group": gid, "extra_groups": groups}, variables)


def release_dir(params: dict[str, Any]) -> str:
    if params["release_dir"]:
        return params["release_dir"].rstrip("/") or "/"
    if not params["colours_dir"]:
        raise HookProblem("give release_dir, or colours_dir to read the colour's release from")
    link = os.path.join(params["colours_dir"], params["colour"])
    if not os.path.islink(link) and not os.path.isdir(link):
        raise HookProblem(f"{link} does not exist, so no release runs as {params['colour']}")
    return os.path.realpath(link)


def read_env_file(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HookProblem(
            f"could not read the env file {path}: {exc.strerror or exc}; the colour's"
            " configuration is written when a release is deployed"
        ) from None
    return parse_env_file(text)[0]


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class OutputTail:
    """The end of a command's output: at most OUTPUT_TAIL_BYTES, and whether more came."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.cut = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > OUTPUT_TAIL_BYTES:
            del self.data[: len(self.data) - OUTPUT_TAIL_BYTES]
            self.cut = True


@dataclass(frozen=True)
class Finished:
    """How a command ended and the end of its output."""

    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: bytes
    cut_at_start: bool


def read_output(
    process: subprocess.Popen, selector: selectors.BaseSelector, tail: OutputTail, deadline: float
) -> bool:
    """Read the command's output until it ended and its output closed, or until the
    deadline; whether it ended in time. A process it left behind holding the output gets
    DRAIN_S more to write."""
    assert process.stdout is not None
    ended_at: float | None = None
    while True:
        now = time.monotonic()
        if ended_at is None and process.poll() is not None:
            ended_at = now
        if ended_at is None and now >= deadline:
            return False
        limit = deadline if ended_at is None else ended_at + DRAIN_S
        if now >= limit:
            return True
        if not selector.select(min(limit - now, 0.2)):
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if chunk:
            tail.add(chunk)
            continue
        # Its output closed; it may still run.
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True


def run_command(
    command: str, cwd: str, env: dict[str, str], timeout: int, identity: dict[str, Any]
) -> Finished:
    """Run ``command`` with /bin/sh -c in a session of its own and keep the end of its
    output; stop its whole process group when it outlives ``timeout``."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **identity,
    )
    assert process.stdout is not None
    tail = OutputTail()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            in_time = read_output(process, selector, tail, started + timeout)
        if not in_time:
            _kill_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(TERM_GRACE_S)
    finally:
        # The session's leader is the hook's shell: what it left behind goes with it.
        _kill_group(process.pid, signal.SIGKILL)
        process.stdout.close()
        exit_code = process.wait()
    return Finished(
        exit_code=exit_code if in_time else None,
        timed_out=not in_time,
        duration_s=round(time.monotonic() - started, 3),
        output=bytes(tail.data),
        cut_at_start=tail.cut,
    )


def run_hooks(
    module: AnsibleModule, hooks: list[Hook], planned: list[Hook], host: str
) -> tuple[str, str, list[HookRun], list[str]]:
    """Run the planned hooks; the release directory, version, runs and hooks not run."""
    params = module.params
    at, colour = params["at"], params["colour"]
    directory = release_dir(params)
    version = os.path.basename(directory)
    if not os.path.isdir(directory):
        raise HookProblem(f"the release directory {directory} does not exist")
    env_file = read_env_file(params["env_file"])
    secrets = secret_values(env_file, params["secret_names"], hooks)
    secrets |= secret_looking_values(env_file)
    module.no_log_values.update(secrets)
    who = account(params["user"], params["group"])
    venv_bin = os.path.join(directory, "venv", "bin")
    runs: list[HookRun] = []
    for index, hook in enumerate(planned):
        env = hook_environment(who.variables, env_file, hook.environment, venv_bin)
        try:
            done = run_command(hook.command, directory, env, hook.timeout, who.popen)
        except OSError as exc:
            raise HookProblem(f"could not start the hook {hook.name}: {exc}") from None
        run = HookRun(
            name=hook.name,
            at=at,
            host=host,
            colour=colour,
            version=version,
            ran=True,
            exit_code=done.exit_code,
            timed_out=done.timed_out,
            timeout=hook.timeout,
            duration_s=done.duration_s,
            excerpt=excerpt(
                redact(done.output.decode("utf-8", errors="replace"), secrets), done.cut_at_start
            ),
        )
        runs.append(run)
        if not run.ok and blocks(at):
            return directory, version, runs, [later.name for later in planned[index + 1 :]]
    return directory, version, runs, []


def planned_runs(module: AnsibleModule, planned: list[Hook], host: str) -> tuple[str, str, list]:
    """What would run, in check mode: nothing is read that a release has not written yet."""
    params = module.params
    try:
        directory = release_dir(params)
    except HookProblem:
        directory = ""
    version = os.path.basename(directory)
    runs = [
        HookRun(hook.name, params["at"], host, params["colour"], version, ran=False)
        for hook in planned
    ]
    return directory, version, runs


def result_of(
    changed: bool,
    directory: str,
    version: str,
    runs: list[HookRun],
    not_run: list[str],
    outcome: HookReport,
    params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "changed": changed,
        "at": params["at"],
        "colour": params["colour"],
        "version": version,
        "release_dir": directory,
        "runs": [run.as_dict() for run in runs],
        "not_run": not_run,
        "journal": [
            {"host": run.host, "message": run_message(run), "evidence": journal_evidence(run)}
            for run in runs
            if run.ran
        ],
        **outcome.as_dict(),
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    at = params["at"]
    host = params["host"] or socket.gethostname()
    try:
        hooks = hooks_from(params["hooks"])
    except HookError as exc:
        module.fail_json(msg=f"{exc}. Nothing was run.")
    planned = hooks_for_host(hooks, at, host, params["colour"], params["play_hosts"])
    if not planned:
        module.exit_json(**result_of(False, "", "", [], [], report(at, host, []), params))
    if module.check_mode:
        directory, version, runs = planned_runs(module, planned, host)
        outcome = report(at, host, runs)
        module.exit_json(**result_of(True, directory, version, runs, [], outcome, params))
    try:
        directory, version, runs, not_run = run_hooks(module, hooks, planned, host)
    except HookProblem as exc:
        outcome = problem_report(at, host, str(exc))
        if outcome.stops_release:
            module.fail_json(
                msg=outcome.message, **result_of(False, "", "", [], [], outcome, params)
            )
        module.warn(outcome.warning)
        module.exit_json(**result_of(False, "", "", [], [], outcome, params))
    outcome = report(at, host, runs, not_run)
    if outcome.warning:
        module.warn(outcome.warning)
    module.exit_json(**result_of(True, directory, version, runs, not_run, outcome, params))


if __name__ == "__main__":
    main()
