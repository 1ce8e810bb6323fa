#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: colour_start
short_description: Point a colour at a release, restart it when needed, prove it healthy
description:
  - Points the colour's link at O(release_dir) (atomically), then restarts the colour's
    systemd unit when the link moved, when what the colour would start with (the release
    directory and the checksums of O(config_files)) differs from what it was last started
    with, or when the unit is not active; otherwise leaves it running.
  - Records what the colour now starts with in C(<colours_dir>/.<colour>.config-sha256),
    waits for its health endpoint as M(colour_state) does, asks its smoke routes, and
    checks that they name O(version) in O(version_header).
  - Fails, naming the host, the colour and why (with the unit's last log lines when it
    did not get healthy), when the colour is not healthy, a smoke route answers wrongly,
    or it runs another version. The result still holds what was read.
  - The decisions are in module_utils/colour_state.py, the probing in
    module_utils/colour_probe.py (shared with M(colour_state)).
version_added: "0.1.0"
options:
  name:
    description: Name of the service; its units are C(<name>@<colour>.service).
    type: str
    required: true
  colour:
    description: The colour to start.
    type: str
    required: true
    choices: [blue, green]
  version:
    description: Version of the release, which the smoke routes must name.
    type: str
    required: true
  release_dir:
    description: Directory of the release the colour runs.
    type: path
    required: true
  colours_dir:
    description: Directory holding one link per colour to the release it runs.
    type: path
    required: true
  config_files:
    description:
      - Files the colour starts with besides its release (environment, launcher, unit,
        configuration files); a change to any of them restarts it.
    type: list
    elements: path
    default: []
  ports:
    description: Port of each colour, keys C(blue) and C(green).
    type: dict
    required: true
  health_path:
    description: Path of the health endpoint, probed on 127.0.0.1 at the colour's port.
    type: str
    default: /health
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 5
  wait_healthy:
    description: Seconds to wait for the colour to answer its health check with 200.
    type: float
    default: 60
  interval:
    description: Seconds between health probes.
    type: float
    default: 0.5
  max_restarts:
    description: Crash restarts of the unit after which waiting stops.
    type: int
    default: 3
  smoke:
    description:
      - Routes to request once the colour is healthy, in order. Each answer must have the
        route's O(smoke[].status) and, when the route says so, contain
        O(smoke[].expect_text) and hold O(smoke[].expect_json); a wrong answer fails the
        task, whose message names each wrong one. Only the first MiB of a body is read.
      - The routes are checked before anything is changed; one that cannot be sent fails
        the task, named by its index and path, with what to write instead.
      - Header values and bodies may be secrets from vault. They never appear in the
        result, a message or a log; routes are shown by header names and body length.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Path (and query) to request on 127.0.0.1 at the colour's port. Required; it must
            start with C(/).
        type: str
      method:
        description: HTTP method.
        type: str
        default: GET
      headers:
        description:
          - Request headers, name to value, e.g. C(Authorization) with a bearer token from
            vault. Each value must be a string.
          - The values are hidden (C(no_log)) from the result, messages and logs, which name
            the headers only. They go with a redirect to the same host, never to another.
        type: dict
      body:
        description:
          - A string sent as the body, as is (UTF-8). Without a C(Content-Type) header urllib
            sends C(application/x-www-form-urlencoded), as C(curl -d) does.
          - Hidden like the header values; answers and messages give its length only.
          - Give O(smoke[].body) or O(smoke[].json), not both.
        type: raw
      json:
        description:
          - "Any value, sent JSON-encoded, with the header C(Content-Type: application/json)
            unless O(smoke[].headers) names a Content-Type. V(null) sends no body."
          - Answers and messages give the body's length only, but the task's arguments show
            its values as any option's; a secret belongs in O(smoke[].headers), or in
            O(smoke[].body) (for example C("{{ payload | to_json }}")), which are hidden.
        type: raw
      status:
        description: Status the answer must have.
        type: int
        default: 200
      expect_text:
        description: Text the answer's body must contain (of its first MiB, the most that is read).
        type: str
      expect_json:
        description:
          - "Values the answer's JSON body must hold, dotted path to value, e.g.
            C({status: ok, data.0.id: 1}); a number in the path indexes a list."
          - The answer must be JSON. Values compare as JSON, so C(1) and C(1.0) are equal but
            C(1), C("1") and C(true) differ.
        type: dict
      follow_redirects:
        description:
          - Follow redirects and judge the last answer, as urllib does (a POST's 301, 302 or
            303 is followed with a GET; its 307 or 308 is not followed).
          - "V(false) judges the redirect itself, e.g. with O(smoke[].status=302)."
        type: bool
        default: true
  version_header:
    description: Response header in which the service names its version; '' skips the check.
    type: str
    default: X-Bluegreen-Version
  log_lines:
    description: Lines of the unit's journal quoted when the colour does not get healthy.
    type: int
    default: 20
  container:
    description:
      - "The container runtime's colour (bluegreen_service_runtime container), whose image's
        HEALTHCHECK is one more gate after health, smoke and version: every container of
        the Compose project must say C(healthy) within O(wait_healthy) seconds (counted from
        the start), in a check run after the gate opened. An image without a HEALTHCHECK
        passes the gate, and says so (RV(healthcheck))."
    type: dict
    suboptions:
      engine:
        description: The engine's command line program.
        type: path
        default: /usr/bin/docker
      project:
        description: The colour's Compose project (C(<name>-<colour>)).
        type: str
        required: true
  host:
    description: Name of the host in messages (the inventory name); the host's own name by default.
    type: str
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Start the idle colour on its release and prove it healthy
  colour_start:
    name: sampleapp
    colour: green
    version: 2.0.0
    release_dir: /opt/sampleapp/releases/2.0.0
    colours_dir: /opt/sampleapp/colours
    config_files:
      - /etc/sampleapp/green.env
      - /etc/sampleapp/run
      - /etc/systemd/system/sampleapp@.service
    ports: {blue: 8001, green: 8002}
    smoke: [{path: /}]
    host: "{{ inventory_hostname }}"
  register: started

- name: Start the idle colour and prove it reaches its database, with a token from vault
  colour_start:
    name: projects
    colour: blue
    version: 1.4.2
    release_dir: /opt/projects/releases/1.4.2
    colours_dir: /opt/projects/colours
    ports: {blue: 8001, green: 8002}
    smoke:
      - path: /healthz
        expect_text: ok
      - method: POST
        path: /api/projects
        headers:
          Authorization: "Bearer {{ vault_projects_smoke_token }}"
        json: {name: smoke-test, temporary: true}
        status: 201
      - path: /api/status
        headers:
          Authorization: "Bearer {{ vault_projects_smoke_token }}"
        expect_json: {status: ok, data.0.id: 1}
      - path: /old-login
        status: 302
        follow_redirects: false
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
healthcheck:
  description:
    - The container runtime's gate; C(healthy), or C(none) when the image defines no
      HEALTHCHECK, with each container's last check.
  type: dict
  returned: with O(container)
  sample:
    verdict: healthy
    waited_s: 6.2
    containers: [{name: sampleapp-green_web_1, status: healthy}]
previous_release_dir:
  description:
    - The release directory the colour's link named before this run (null for none), what
      a failed release puts the colour back on, so it is not pruned meanwhile.
  type: str
  returned: always
  sample: /opt/sampleapp/releases/1.0.0
restarted:
  description: Whether the unit was (re)started.
  type: bool
  returned: always
reason:
  description: Why it was (re)started; '' when it ran what it should already.
  type: str
  returned: always
  sample: its link now points at the release
config_sha256:
  description: What the colour starts with, as one SHA-256 (release directory and config files).
  type: str
  returned: always
colours:
  description: What M(colour_state) returns for the colour, after the wait.
  type: dict
  returned: unless in check mode
smoke:
  description:
    - The smoke routes' answers, per colour, in the order of O(smoke).
    - Header values and bodies are not in them; header names and the body's length are.
  type: dict
  returned: unless in check mode
  contains:
    method:
      description: Method sent.
      type: str
    path:
      description: Path requested.
      type: str
    expected:
      description: Status the answer had to have.
      type: int
    status:
      description: Status of the answer (the last, when redirects were followed); null for none.
      type: int
    version:
      description: Value of O(version_header) in the answer.
      type: str
    ok:
      description: Whether the answer was right (status, text, JSON values).
      type: bool
    problem:
      description: What was wrong with the answer, '' when it was right.
      type: str
    error:
      description: Why nothing answered (or the body could not be read), when so.
      type: str
    headers:
      description: Names of the headers sent (their values are hidden).
      type: list
      elements: str
    body_bytes:
      description: Length of the body sent, 0 for none.
      type: int
  sample:
    green:
      - {method: POST, path: /api/projects, expected: 201, status: 500, version: 2.0.0,
         ok: false, problem: "POST /api/projects answered 500, expected 201", error: null,
         headers: [Authorization], body_bytes: 42}
waited_s:
  description: Seconds spent waiting for the colour to get healthy.
  type: float
  returned: unless in check mode
gave_up:
  description: Why waiting stopped before the colour was healthy, when it did.
  type: str
  returned: unless in check mode
check:
  description: The check that stopped the release (C(health), C(smoke) or C(version)).
  type: str
  returned: failure
"""

import dataclasses
import os
import socket
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_probe import Probe, link_target, unit_state, wait_for_colours
from ansible.module_utils.colour_state import (
    config_checksum,
    invalid_options,
    restart_reason,
    unhealthy_message,
    unit_name,
    version_mismatch_message,
)
from ansible.module_utils.container_runtime import (
    HEALTHY,
    NO_HEALTHCHECK,
    STARTING,
    health_states,
    health_verdict,
    unhealthy_container_message,
)
from ansible.module_utils.file_system import (
    file_sha256,
    read_text,
    replace_symlink,
    write_text_atomic,
)
from ansible.module_utils.smoke_routes import (
    ARGUMENT_SPEC_OPTIONS,
    SmokeRouteError,
    smoke_failure_message,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "colour": {"type": "str", "required": True, "choices": ["blue", "green"]},
    "version": {"type": "str", "required": True},
    "release_dir": {"type": "path", "required": True},
    "colours_dir": {"type": "path", "required": True},
    "config_files": {"type": "list", "elements": "path", "default": []},
    "ports": {"type": "dict", "required": True},
    "health_path": {"type": "str", "default": "/health"},
    "timeout": {"type": "float", "default": 5.0},
    "wait_healthy": {"type": "float", "default": 60.0},
    "interval": {"type": "float", "default": 0.5},
    "max_restarts": {"type": "int", "default": 3},
    "smoke": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": ARGUMENT_SPEC_OPTIONS,
    },
    "version_header": {"type": "str", "default": "X-Bluegreen-Version"},
    "log_lines": {"type": "int", "default": 20},
    "container": {
        "type": "dict",
        "options": {
            "engine": {"type": "path", "default": "/usr/bin/docker"},
            "project": {"type": "str", "required": True},
        },
    },
    "host": {"type": "str"},
}


def systemctl(module: AnsibleModule, *args: str) -> str:
    command = [module.get_bin_path("systemctl", required=True), *args]
    rc, out, err = module.run_command(command)
    if rc != 0:
        module.fail_json(msg=f"{' '.join(command)} failed (exit {rc}): {(err or out).strip()}")
    return out.strip()


def journal_tail(module: AnsibleModule, unit: str, lines: int) -> list[str]:
    _rc, out, _err = module.run_command(
        ["journalctl", f"_SYSTEMD_UNIT={unit}", "-n", str(lines), "--no-pager", "-o", "cat"]
    )
    return out.splitlines()


def start(module: AnsibleModule, unit: str, restart: bool) -> None:
    # The unit template may have just been rendered: systemd reads it again first.
    systemctl(module, "daemon-reload")
    rc, out, _err = module.run_command(
        [module.get_bin_path("systemctl", required=True), "is-enabled", unit]
    )
    if rc != 0 or out.strip() != "enabled":
        systemctl(module, "enable", unit)
    if restart:
        systemctl(module, "restart", unit)


def failure(module: AnsibleModule, unit: str, found: dict, host: str) -> tuple[str, str]:
    """The check that failed (health, smoke, version) and why; ('', '') when none did."""
    params = module.params
    colour = params["colour"]
    record = found["colours"][colour]
    if not record["healthy"]:
        return "health", unhealthy_message(
            colour=colour,
            service=params["name"],
            version=params["version"],
            host=host,
            record=record,
            waited_s=found["waited_s"],
            gave_up=found["gave_up"],
            health_path=params["health_path"],
            log_lines=journal_tail(module, unit, params["log_lines"]),
        )
    answers = found["smoke"][colour]
    smoke = smoke_failure_message(colour, host, answers)
    if smoke:
        return "smoke", smoke
    version = version_mismatch_message(
        colour, host, answers, params["version_header"], params["version"]
    )
    return ("version", version) if version else ("", "")


def container_health(module: AnsibleModule, engine: str, project: str) -> list[dict[str, Any]]:
    """Each container of the Compose project, with its HEALTHCHECK's state."""
    rc, out, err = module.run_command(
        [engine, "ps", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]
    )
    if rc != 0:
        module.fail_json(msg=f"{engine} ps failed (exit {rc}): {(err or out).strip()}")
    ids = out.split()
    if not ids:
        return []
    rc, out, _err = module.run_command([engine, "inspect", *ids])
    return health_states(out) if rc == 0 else []


def healthcheck_gate(module: AnsibleModule, started: float) -> dict[str, Any]:
    """Wait until the image's HEALTHCHECK says healthy in every container, or stop at
    unhealthy or when the wait is over; the verdict, how long it took, each container.
    Only checks run since the gate opened count."""
    params = module.params
    engine, project = params["container"]["engine"], params["container"]["project"]
    opened = time.time()
    while True:
        states = container_health(module, engine, project)
        verdict = health_verdict(states, since=opened)
        waited = time.monotonic() - started
        if verdict != STARTING or waited >= params["wait_healthy"]:
            return {"verdict": verdict, "waited_s": round(waited, 1), "containers": states}
        time.sleep(min(1.0, params["interval"]))


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    colour = params["colour"]
    problem = invalid_options([colour], params["ports"])
    if problem:
        module.fail_json(msg=problem)
    try:
        probe = Probe.from_params(params)
    except SmokeRouteError as exc:
        module.fail_json(msg=f"{exc}. Nothing was changed.")
    host = params["host"] or socket.gethostname()
    unit = unit_name(params["name"], colour)
    link = os.path.join(params["colours_dir"], colour)
    record_path = os.path.join(params["colours_dir"], f".{colour}.config-sha256")

    previous = link_target(link)
    link_changed = previous != params["release_dir"]
    config_sha256 = config_checksum(
        params["release_dir"], [file_sha256(path) for path in params["config_files"]]
    )
    recorded = read_text(record_path)
    state, restarts_before = unit_state(module, unit)
    reason = restart_reason(link_changed, recorded, config_sha256, state)
    record_changed = (recorded or "").strip() != config_sha256
    result = {
        "changed": bool(link_changed or reason or record_changed),
        "restarted": bool(reason),
        "reason": reason,
        "config_sha256": config_sha256,
        "previous_release_dir": previous,
    }
    if module.check_mode:
        module.exit_json(**result)

    if link_changed:
        replace_symlink(link, params["release_dir"])
    start(module, unit, restart=bool(reason))
    if record_changed:
        write_text_atomic(record_path, config_sha256 + "\n")

    started = time.monotonic()
    probe = dataclasses.replace(probe, restarts_baseline={colour: restarts_before})
    found = wait_for_colours(module, probe, [colour])
    result.update(found)
    check, message = failure(module, unit, found, host)
    if message:
        module.fail_json(msg=message, check=check, **result)
    if params["container"]:
        gate = healthcheck_gate(module, started)
        result["healthcheck"] = gate
        if gate["verdict"] not in (HEALTHY, NO_HEALTHCHECK):
            module.fail_json(
                msg=unhealthy_container_message(
                    params["name"], colour, host, gate["containers"], gate["waited_s"]
                ),
                check="healthcheck",
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
