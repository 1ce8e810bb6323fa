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
python_version:
  description:
    - The version of the Python this module ran with on the host (its C(python3) unless
      C(ansible_python_interpreter) says otherwise), for the release's check of the
      artifact's Requires-Python.
  returned: always
  type: str
  sample: 3.11.2
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

import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_probe import Probe, wait_for_colours
from ansible.module_utils.colour_state import invalid_options


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
    probe = Probe.from_params(params)
    module.exit_json(
        changed=False,
        python_version=platform.python_version(),
        **wait_for_colours(module, probe, params["colours"]),
    )


if __name__ == "__main__":
    main()
