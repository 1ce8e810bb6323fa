#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: synthetic_load
short_description: Send a step of synthetic HTTP traffic to servers and summarise the answers
description:
  - Sends a bounded load step (a request rate or a number of concurrent clients, for a number
    of seconds) to every server of a colour, round-robin over the servers and the routes, so
    that the colour's golden signals can be judged before it gets real users.
  - "Open loop (O(rate) > 0): requests leave on a fixed schedule, O(rate) per second in total,
    however long the answers take, with at most O(concurrency) in flight; a slow colour
    therefore still receives the whole step, and its latency shows. Closed loop (O(rate=0)):
    O(concurrency) clients each send the next request when the previous one is answered."
  - The module returns once every request has been answered or has timed out, so metrics read
    right after it include every request it sent.
  - Only safe methods (GET, HEAD, OPTIONS) are sent unless O(allow_unsafe_methods) is true.
  - What the client saw (status counts, requests without an answer, latency) is summarised per
    route and per server. It backs up, and does not replace, the service's own metrics, which
    the golden_signals module judges.
version_added: "0.1.0"
options:
  targets:
    description:
      - Base URL of every server that receives traffic, e.g. C(http://10.0.0.12:8002). The
        route paths are appended to it.
    type: list
    elements: str
    required: true
  routes:
    description:
      - The requests sent, in turn. Each is a path or a dict with C(path), C(method) (default
        C(GET)) and the expected C(status) (default 200; answers with another status are
        counted as RV(unexpected)).
      - A route sends its method and path only. A smoke route that sets C(headers), C(body)
        or C(json) is refused rather than sent without them; give headers for every request
        in O(headers). Other keys of a smoke route (C(expect_text), C(expect_json),
        C(follow_redirects)) are ignored.
      - The release passes the service's smoke routes (C(bluegreen_service_smoke_routes))
        that only read and set no headers and no body (the C(bluegreen_load_step_routes)
        filter).
    type: list
    elements: raw
    required: true
  rate:
    description:
      - Requests per second over all targets (open loop). V(0) for a closed loop of
        O(concurrency) clients.
    type: float
    default: 10
  concurrency:
    description:
      - Most requests in flight at once (open loop), or the number of clients (closed loop).
    type: int
    default: 16
  duration:
    description:
      - Seconds during which requests are sent. The module returns later by at most
        O(timeout), while the last answers arrive.
    type: float
    default: 5
  timeout:
    description:
      - Seconds to wait for each answer (connect and read); a request without an answer by
        then counts as unanswered.
    type: float
    default: 10
  warmup:
    description:
      - The first seconds of the step warm the servers up. Their requests are sent and their
        statuses (and requests without an answer) count as usual, but their times are left
        out of RV(latency_ms) and every C(latency_histogram_ms), since a process's first
        answers are slow for reasons users behind a warm colour never see.
      - Must be shorter than O(duration). RV(warmup) says how many requests it had.
    type: float
    default: 0
  headers:
    description:
      - HTTP headers sent with every request, e.g. C(Host) or C(Authorization).
    type: dict
  allow_unsafe_methods:
    description:
      - Send routes whose method is not GET, HEAD or OPTIONS. They may change data, so the
        task then reports RV(changed) and sends nothing in check mode.
    type: bool
    default: false
  validate_certs:
    description:
      - Whether to verify TLS certificates of https targets.
    type: bool
    default: true
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: partial
    details: Safe methods change nothing, so they are sent in check mode as without it. A step
      with unsafe methods sends nothing in check mode and returns its plan.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on a host that reaches the servers the way the load balancers do (the release
    delegates it to the first load balancer).
  - Only the Python standard library is needed on that host.
seealso:
  - module: golden_signals
    description: Judges the colour from its own metrics over the window of the load step.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Send 5 s of 10 req/s to the idle colour's servers, on its smoke routes
  synthetic_load:
    targets: ["http://10.0.0.12:8002", "http://10.0.0.13:8002"]
    routes:
      - {path: /, status: 200}
      - {path: "/notes?limit=1", status: 200}
    rate: 10
    duration: 5
  delegate_to: lb1
  run_once: true
  register: load

- name: Eight clients back to back for 10 s (closed loop)
  synthetic_load:
    targets: ["http://127.0.0.1:8002"]
    routes: [/, /notes?limit=50]
    rate: 0
    concurrency: 8
    duration: 10
"""

RETURN = r"""
requests:
  description: Requests sent.
  returned: always
  type: int
  sample: 50
unanswered:
  description: Requests that got no HTTP answer (refused, reset, timed out).
  returned: always
  type: int
  sample: 0
unexpected:
  description: Answers whose status differs from the route's expected status.
  returned: always
  type: int
  sample: 0
statuses:
  description: Answers per HTTP status.
  returned: always
  type: dict
  sample: {"200": 50}
latency_histogram_ms:
  description:
    - Client-side latency of the answered requests as a histogram, whole milliseconds to the
      number of answers that took that long; exact at 1 ms and mergeable by adding counts.
    - Also in each entry of RV(by_route) and RV(by_target).
  returned: always
  type: dict
  sample: {"3": 40, "4": 9, "12": 1}
errors:
  description: Requests without an answer, per kind of error.
  returned: always
  type: dict
  sample: {"TimeoutError": 2}
by_route:
  description: RV(requests), RV(unanswered), RV(unexpected), RV(statuses) per C(METHOD path).
  returned: always
  type: dict
by_target:
  description: The same counts per target.
  returned: always
  type: dict
latency_ms:
  description: Client-side latency of the answered requests (nearest-rank p50, p95, maximum).
  returned: always
  type: dict
  sample: {p50: 3.1, p95: 7.9, max: 12.4}
started_at:
  description: Unix time the first request left.
  returned: always
  type: float
ended_at:
  description: Unix time the last answer arrived (or timed out).
  returned: always
  type: float
warmup:
  description: The warm-up's C(seconds), its C(requests) and the slowest of their answers.
  returned: always
  type: dict
  sample: {seconds: 1.0, requests: 10, latency_ms_max: 842.3}
duration_s:
  description: Seconds from the first request to the last answer.
  returned: always
  type: float
rate_achieved:
  description: Requests sent per second of RV(duration_s).
  returned: always
  type: float
step:
  description: The load step as sent, with the number of requests its schedule planned.
  returned: always
  type: dict
sent:
  description: Whether the requests were sent; false in check mode with unsafe methods.
  returned: always
  type: bool
"""

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.synthetic_load import (
    LoadError,
    LoadStep,
    Outcome,
    Route,
    load_step,
    request_cycle,
    route_secrets,
    schedule,
    summarise,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    targets=dict(type="list", elements="str", required=True),
    routes=dict(type="list", elements="raw", required=True),
    rate=dict(type="float", default=10.0),
    concurrency=dict(type="int", default=16),
    duration=dict(type="float", default=5.0),
    warmup=dict(type="float", default=0.0),
    timeout=dict(type="float", default=10.0),
    headers=dict(type="dict", no_log=True),
    allow_unsafe_methods=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
)

Send = Callable[[str, Route], Outcome]


def http_sender(step: LoadStep, headers: Mapping[str, str], validate_certs: bool) -> Send:
    """One request on a new connection; never raises, a failure is an Outcome without status."""
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    def send(target: str, route: Route) -> Outcome:
        parts = urlsplit(target)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=step.timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=step.timeout)
        started, clock = time.time(), time.monotonic()
        try:
            conn.request(
                route.method,
                route.path,
                headers={
                    "Connection": "close",
                    "User-Agent": "bluegreen-synthetic_load",
                    **headers,
                },
            )
            response = conn.getresponse()
            response.read()
            return Outcome(target, route, started, time.monotonic() - clock, response.status)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(
                target, route, started, time.monotonic() - clock, None, type(exc).__name__
            )
        finally:
            conn.close()

    return send


def open_loop(step: LoadStep, send: Send) -> list[Outcome]:
    """Requests leave on schedule; when every worker is busy they wait for the next free one."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=step.concurrency) as pool:
        futures = []
        for offset, target, route in schedule(step):
            time.sleep(max(0.0, began + offset - time.monotonic()))
            futures.append(pool.submit(send, target, route))
        return [future.result() for future in futures]


def closed_loop(step: LoadStep, send: Send) -> list[Outcome]:
    """`concurrency` clients, each sending its next request once the last one is answered."""
    deadline = time.monotonic() + step.duration
    cycle = request_cycle(step)
    lock = threading.Lock()
    outcomes: list[Outcome] = []

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                target, route = next(cycle)
            outcome = send(target, route)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(step.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    module.no_log_values.update(route_secrets(params["routes"]))
    try:
        step = load_step(params)
    except LoadError as exc:
        module.fail_json(msg=f"synthetic_load: {exc}; nothing was sent")

    if module.check_mode and step.unsafe:
        now = time.time()
        module.exit_json(changed=True, sent=False, **summarise(step, [], now, now))

    send = http_sender(step, params.get("headers") or {}, params["validate_certs"])
    started = time.time()
    outcomes = open_loop(step, send) if step.open_loop else closed_loop(step, send)
    ended = max([started, *(o.started + o.seconds for o in outcomes)])
    module.exit_json(changed=step.unsafe, sent=True, **summarise(step, outcomes, started, ended))


if __name__ == "__main__":
    main()
