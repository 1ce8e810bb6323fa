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
      - Routes to request once healthy, each a dict with C(path), the expected C(status)
        (default 200) and C(method) (default GET).
    type: list
    elements: dict
    default: []
  version_header:
    description: Response header in which the service names its version; '' skips the check.
    type: str
    default: X-Bluegreen-Version
  log_lines:
    description: Lines of the unit's journal quoted when the colour does not get healthy.
    type: int
    default: 20
  host:
    description: Name of the host in messages (the inventory name); the host's own name by default.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
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
"""

RETURN = r"""
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
  description: The smoke routes' answers, per colour.
  type: dict
  returned: unless in check mode
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

import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_probe import Probe, link_target, unit_state, wait_for_colours
from ansible.module_utils.colour_state import (
    config_checksum,
    invalid_options,
    restart_reason,
    smoke_failure_message,
    unhealthy_message,
    unit_name,
    version_mismatch_message,
)
from ansible.module_utils.file_system import file_sha256, read_text, write_text_atomic


def point_link(link: str, target: str) -> None:
    """Replace the link by rename, so the colour never has no link."""
    temp = f"{link}.bluegreen-new"
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(target, temp)
    os.replace(temp, link)


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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
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
            "smoke": {"type": "list", "elements": "dict", "default": []},
            "version_header": {"type": "str", "default": "X-Bluegreen-Version"},
            "log_lines": {"type": "int", "default": 20},
            "host": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    colour = params["colour"]
    problem = invalid_options([colour], params["ports"])
    if problem:
        module.fail_json(msg=problem)
    host = params["host"] or socket.gethostname()
    unit = unit_name(params["name"], colour)
    link = os.path.join(params["colours_dir"], colour)
    record_path = os.path.join(params["colours_dir"], f".{colour}.config-sha256")

    link_changed = link_target(link) != params["release_dir"]
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
    }
    if module.check_mode:
        module.exit_json(**result)

    if link_changed:
        point_link(link, params["release_dir"])
    start(module, unit, restart=bool(reason))
    if record_changed:
        write_text_atomic(record_path, config_sha256 + "\n")

    probe = Probe.from_params(params, restarts_baseline={colour: restarts_before})
    found = wait_for_colours(module, probe, [colour])
    result.update(found)
    check, message = failure(module, unit, found, host)
    if message:
        module.fail_json(msg=message, check=check, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
