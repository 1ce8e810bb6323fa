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
      - Routes to request on every colour once it is healthy (after the wait), in order.
        Each answer is judged by the route's O(smoke[].status) and, when given,
        O(smoke[].expect_text) and O(smoke[].expect_json), and returned with the value of
        O(version_header), so a caller can check the colour runs the version it should.
        Only the first MiB of a body is read.
      - The routes are checked before anything is probed; one that cannot be sent fails
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

- name: Ask the live colour whether it reaches its database, with a token from vault
  colour_state:
    name: projects
    colours: [blue]
    ports: {blue: 8001, green: 8002}
    colours_dir: /opt/projects/colours
    smoke:
      - path: /api/status
        headers:
          Authorization: "Bearer {{ vault_projects_smoke_token }}"
        expect_json: {status: ok}
  register: status

- name: Say whether it does
  ansible.builtin.debug:
    msg: "{{ status.smoke.blue[0].problem or 'the database answers' }}"
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
  description:
    - Answers to O(smoke), per colour, in order; empty for a colour that is not healthy.
    - Header values and bodies are not in them; header names and the body's length are.
  returned: always
  type: dict
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
      - {method: GET, path: /, expected: 200, status: 200, version: 2.0.0, ok: true,
         problem: "", error: null, headers: [], body_bytes: 0}
      - {method: GET, path: /api/status, expected: 200, status: 200, version: 2.0.0, ok: false,
         problem: "GET /api/status answered 200 but data.0.id is 2, expected 1", error: null,
         headers: [Authorization], body_bytes: 0}
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
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_probe import Probe, wait_for_colours
from ansible.module_utils.colour_state import invalid_options
from ansible.module_utils.smoke_routes import ARGUMENT_SPEC_OPTIONS, SmokeRouteError

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
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
    "smoke": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": ARGUMENT_SPEC_OPTIONS,
    },
    "version_header": {"type": "str", "default": "X-Bluegreen-Version"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problem = invalid_options(params["colours"], params["ports"])
    if problem:
        module.fail_json(msg=problem)
    try:
        probe = Probe.from_params(params)
    except SmokeRouteError as exc:
        module.fail_json(msg=f"{exc}. Nothing was probed.")
    module.exit_json(
        changed=False,
        python_version=platform.python_version(),
        **wait_for_colours(module, probe, params["colours"]),
    )


if __name__ == "__main__":
    main()
