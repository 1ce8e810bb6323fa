#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: colour_state
short_description: Read what each colour of a service runs on an app host, and whether it is healthy
description:
  - Reads, for each colour the host runs, the release its link points at, the state of its
    systemd unit and the answer of its health endpoint, in one call.
  - Used before a release (is the live colour healthy, is the version live already), before a
    rollback (is the colour to go back to healthy) and by the status playbook.
  - Never changes anything.
version_added: "0.1.0"
options:
  name:
    description:
      - Name of the service; its units are C(<name>@<colour>.service).
    type: str
    required: true
  colours:
    description:
      - Colours this host runs.
    type: list
    elements: str
    default: [blue, green]
  ports:
    description:
      - Port of each colour, keys C(blue) and C(green).
    type: dict
    required: true
  colours_dir:
    description:
      - Directory holding one link per colour to the release it runs.
    type: path
    required: true
  health_path:
    description:
      - Path of the health endpoint, probed on 127.0.0.1 at the colour's port.
    type: str
    default: /health
  timeout:
    description:
      - Seconds to wait for each health answer.
    type: float
    default: 5
  wait_healthy:
    description:
      - Seconds to keep probing until every colour answers 200. C(0) reads once.
      - The wait ends early when a colour's unit has failed or has been restarted
        O(max_restarts) times since it started, since such a colour will not get healthy.
    type: float
    default: 0
  interval:
    description:
      - Seconds between probes while waiting.
    type: float
    default: 0.5
  max_restarts:
    description:
      - Restarts of a colour's unit (systemd NRestarts) after which waiting stops.
    type: int
    default: 3
  smoke:
    description:
      - Routes to request on every colour once it is healthy (after the wait), each a dict
        with C(path), the expected C(status) (default 200) and C(method) (default GET).
      - Each answer is returned with the value of O(version_header), so a caller can check
        the colour runs the version it should.
    type: list
    elements: dict
    default: []
  version_header:
    description:
      - Response header in which the service names its version.
    type: str
    default: X-Bluegreen-Version
  restarts_baseline:
    description:
      - Restart count of each colour's unit before this deployment started it; systemd
        keeps counting across manual restarts, so O(max_restarts) counts from here.
    type: dict
    default: {}
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
- name: Read what each colour runs
  colour_state:
    name: sampleapp
    colours: [blue, green]
    ports: {blue: 8001, green: 8002}
    colours_dir: /opt/sampleapp/colours
  register: running

- name: Refuse to roll back to an unhealthy colour
  ansible.builtin.assert:
    that: running.colours.green.healthy
"""

RETURN = r"""
colours:
  description: One entry per colour the host runs.
  returned: always
  type: dict
  contains:
    version:
      description: Version the colour's link points at; null when nothing is deployed.
      type: str
    release_dir:
      description: Target of the colour's link.
      type: str
    state:
      description: ActiveState of the colour's systemd unit (active, inactive, failed, ...).
      type: str
    health_status:
      description: HTTP status of the health endpoint; -1 when nothing answered.
      type: int
    health_error:
      description: Why the health probe got no answer, when it got none.
      type: str
    healthy:
      description: True when the health endpoint answered 200.
      type: bool
    restarts:
      description: Times systemd restarted the colour's unit since it was started.
      type: int
  sample:
    blue: {version: 2.0.0, release_dir: /opt/sampleapp/releases/2.0.0, state: active,
           health_status: 200, health_error: null, healthy: true, restarts: 0}
smoke:
  description: Answers to O(smoke), per colour; empty for a colour that is not healthy.
  returned: always
  type: dict
  sample:
    green:
      - {method: GET, path: /, expected: 200, status: 200, version: 2.0.0, ok: true, error: null}
waited_s:
  description: Seconds spent waiting for the colours to become healthy.
  returned: always
  type: float
  sample: 2.4
gave_up:
  description: Why waiting stopped before every colour was healthy, when it did.
  returned: always
  type: str
  sample: "sampleapp@green.service restarted 3 times"
"""

import os
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_state import (
    colour_record,
    health_url,
    hopeless,
    invalid_options,
    smoke_answer,
    unit_name,
)


def link_target(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def unit_state(module: AnsibleModule, unit: str) -> tuple[str, int]:
    """ActiveState and NRestarts of a unit."""
    systemctl = module.get_bin_path("systemctl", required=True)
    _rc, out, _err = module.run_command(
        [systemctl, "show", "-p", "ActiveState", "-p", "NRestarts", unit]
    )
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    restarts = fields.get("NRestarts", "0")
    return fields.get("ActiveState", ""), int(restarts) if restarts.isdigit() else 0


def request(
    url: str, timeout: float, method: str = "GET", header: str | None = None
) -> tuple[int | None, str | None, str | None]:
    """Status, the value of `header`, and the error when nothing answered."""
    req = urllib.request.Request(url, method=method, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers.get(header) if header else None, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get(header) if header else None, None
    except (urllib.error.URLError, OSError) as exc:
        return None, None, str(getattr(exc, "reason", exc))


def smoke_answers(module: AnsibleModule, colour: str) -> list[dict]:
    params = module.params
    answers = []
    for route in params["smoke"]:
        method = str(route.get("method", "GET")).upper()
        status, version, error = request(
            health_url(int(params["ports"][colour]), str(route["path"])),
            params["timeout"],
            method,
            params["version_header"],
        )
        answers.append(smoke_answer(route, method, status, version, error))
    return answers


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "colours": {"type": "list", "elements": "str", "default": ["blue", "green"]},
            "ports": {"type": "dict", "required": True},
            "colours_dir": {"type": "path", "required": True},
            "health_path": {"type": "str", "default": "/health"},
            "timeout": {"type": "float", "default": 5.0},
            "wait_healthy": {"type": "float", "default": 0.0},
            "interval": {"type": "float", "default": 0.5},
            "max_restarts": {"type": "int", "default": 3},
            "restarts_baseline": {"type": "dict", "default": {}},
            "smoke": {"type": "list", "elements": "dict", "default": []},
            "version_header": {"type": "str", "default": "X-Bluegreen-Version"},
        },
        supports_check_mode=True,
    )
    params = module.params
    problem = invalid_options(params["colours"], params["ports"])
    if problem:
        module.fail_json(msg=problem)
    started = time.monotonic()
    deadline = started + max(params["wait_healthy"], 0)
    while True:
        colours = read_colours(module)
        gave_up = hopeless(
            colours, params["name"], params["max_restarts"], params["restarts_baseline"]
        )
        all_healthy = all(record["healthy"] for record in colours.values())
        if all_healthy or gave_up or time.monotonic() >= deadline:
            break
        time.sleep(params["interval"])
    smoke = {
        colour: smoke_answers(module, colour) if record["healthy"] else []
        for colour, record in colours.items()
    }
    module.exit_json(
        changed=False,
        colours=colours,
        smoke=smoke,
        waited_s=round(time.monotonic() - started, 3),
        gave_up=None if all_healthy else gave_up,
    )


def read_colours(module: AnsibleModule) -> dict:
    params = module.params
    colours = {}
    for colour in params["colours"]:
        status, _version, error = request(
            health_url(int(params["ports"][colour]), params["health_path"]), params["timeout"]
        )
        state, restarts = unit_state(module, unit_name(params["name"], colour))
        colours[colour] = colour_record(
            link_target(os.path.join(params["colours_dir"], colour)), state, status, error
        ) | {"restarts": restarts}
    return colours


if __name__ == "__main__":
    main()
