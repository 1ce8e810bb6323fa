#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dependency_probe
short_description: Probe a service's declared dependencies from an app host
description:
  - Probes, from the host it runs on, every dependency in O(dependencies) and says for each
    whether it answered, how, and in how many milliseconds.
  - V(tcp) connects. V(postgresql) connects and sends PostgreSQL's SSLRequest, which every
    PostgreSQL server answers with one byte before any authentication, so no credentials
    are needed. V(redis) connects and sends C(PING); C(+PONG), or an error such as
    C(NOAUTH), is an answer. V(http) sends a GET (redirects not followed); a status below
    500 is an answer, a 5xx or no answer is not.
  - Every probe has its own timeout (O(dependencies[].timeout), 3 s by default); the probes
    run one after the other.
  - The module only reads; RV(changed) is always false. A dependency that does not answer
    does not fail the task (RV(probes) says so); a declaration the module cannot use does.
  - The decisions are in module_utils/dependency_probe.py.
version_added: "0.1.0"
options:
  dependencies:
    description:
      - The service's dependencies (C(bluegreen_service_dependencies)).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unique name, shown in verdicts.
        type: str
        required: true
      tcp:
        description: C(host:port) of any TCP service.
        type: str
      postgresql:
        description: C(host) or C(host:port) (5432) of a PostgreSQL server.
        type: str
      redis:
        description: C(host) or C(host:port) (6379) of a Redis server.
        type: str
      http:
        description: Full C(http://) or C(https://) URL of an HTTP API.
        type: str
      timeout:
        description: Seconds the probe may take.
        type: float
        default: 3.0
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Probe what the service needs, from this app host
  dependency_probe:
    dependencies:
      - {name: database, postgresql: "db1:5432"}
      - {name: cache, redis: "cache1"}
      - {name: payments, http: "https://payments.internal/health", timeout: 2}
  register: probed
"""

RETURN = r"""
probes:
  description: One entry per dependency, in order.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: database, kind: postgresql, target: "db1:5432", ok: true, error: null, ms: 1.2}
    - {name: payments, kind: http, target: "https://payments.internal/health", ok: false,
       error: "connection refused", ms: 0.4}
failed_names:
  description: The names of the dependencies that did not answer.
  returned: always
  type: list
  elements: str
"""

import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dependency_probe import (
    POSTGRESQL_SSL_REQUEST,
    REDIS_PING,
    Dependency,
    DependencyError,
    Probe,
    dependencies_from,
    http_answered,
    postgresql_answered,
    redis_answered,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "dependencies": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "tcp": {"type": "str"},
            "postgresql": {"type": "str"},
            "redis": {"type": "str"},
            "http": {"type": "str"},
            "timeout": {"type": "float", "default": 3.0},
        },
    },
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _exchange(dep: Dependency, send: bytes | None) -> bytes:
    with socket.create_connection((dep.host, dep.port), timeout=dep.timeout) as sock:
        if send is None:
            return b""
        sock.sendall(send)
        return sock.recv(64)


def _error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, urllib.error.URLError):
        return _error(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    return str(exc) or type(exc).__name__


def probe(dep: Dependency) -> Probe:
    started = time.monotonic()
    error: str | None
    try:
        if dep.kind == "http":
            opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
            request = urllib.request.Request(dep.target, method="GET")
            try:
                with opener.open(request, timeout=dep.timeout) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            error = http_answered(status)
        elif dep.kind == "postgresql":
            error = postgresql_answered(_exchange(dep, POSTGRESQL_SSL_REQUEST))
        elif dep.kind == "redis":
            error = redis_answered(_exchange(dep, REDIS_PING))
        else:
            _exchange(dep, None)
            error = None
    except (OSError, ssl.SSLError, urllib.error.URLError, ValueError) as exc:
        error = _error(exc)
    ms = (time.monotonic() - started) * 1000
    return Probe(dep.name, dep.kind, dep.target, error is None, error, ms)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    # The suboptions' defaults fill every kind in with None: keep only what was given.
    declared = [
        {k: v for k, v in entry.items() if v is not None} for entry in module.params["dependencies"]
    ]
    try:
        dependencies = dependencies_from(declared)
    except DependencyError as exc:
        module.fail_json(msg=f"{exc}. Fix bluegreen_service_dependencies in the inventory")
    probes = [probe(dep) for dep in dependencies]
    module.exit_json(
        changed=False,
        probes=[p.as_dict() for p in probes],
        failed_names=[p.name for p in probes if not p.ok],
    )


if __name__ == "__main__":
    main()
