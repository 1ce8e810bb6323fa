#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_requests
short_description: Measure each colour's requests at the load balancer from nginx's request log
description:
  - Reads the per-request JSON log that nginx writes for one service on a load balancer and
    counts, per colour nginx routed to, the requests, errors, statuses, latency and bytes, and
    the same per route. These are the golden signals as users got them, measured without any
    help from the service. Beside them, per colour, the time nginx waited on the colour's
    servers (C($upstream_response_time)), which times the service alone.
  - 'The log has one JSON object per line, written by a C(log_format ... escape=json), for
    example C({"time":1733500000.123,"colour":"green","status":200,"request_time":0.012,
    "upstream_time":"0.011","upstream":"10.0.0.5:8002","method":"GET","uri":"/notes",
    "bytes":123}) from C($msec), the colour variable, C($status), C($request_time),
    C($upstream_response_time), C($upstream_addr), C($request_method), C($uri) and
    C($body_bytes_sent). The bluegreen_lb role renders that format and the C(access_log).'
  - The fields read are C(status), C(request_time), C(upstream), C(uri), C(bytes) and, for a
    routed request, C(colour) and C(upstream_time); numbers may be strings. A line that is not
    a JSON object or lacks one of them (C(upstream_time) aside) is counted in RV(unparsed),
    never an error. A line whose C(upstream) is empty (or C(-)) was answered by nginx itself (a
    maintenance 503, say) and is counted in RV(unrouted), for no colour.
  - C(upstream_time) is one time (C(0.011)), or one per upstream server tried, separated by a
    comma (a retry to the next server, C(0.002, 0.010)) or a colon (an internal redirect), any
    of them C(-) for a server that gave no response. A request's upstream time is the sum of
    its times (the answering server's time when nginx tried one), rounded to whole
    milliseconds. A value of C(-) only, empty, missing or unreadable gives the request no
    upstream time; it is counted in C(no_upstream_time) of its colour, and in every other
    figure as usual, never in RV(unparsed).
  - V(mark) remembers the end of the log now, as RV(mark). V(read) reads every complete line
    written after a mark given as O(since) and returns the new RV(mark) at the end of what it
    read, so windows chained mark to mark count each line exactly once.
  - A log rotated since the mark (another inode at O(path)) is followed into the rotated file,
    C(<path>.1) or a C(<path>-*) name (logrotate's C(dateext)) that has the marked inode, which
    is read from the mark to its end, then the new file from its start (RV(rotated)). When the
    part after the mark cannot be found (rotated twice, deleted, truncated in place by
    C(copytruncate)) RV(lost) is true and the window is incomplete.
  - The file is read in one pass, in chunks, never whole into memory; memory grows with the
    number of distinct C(uri)s, not with the number of lines.
  - The module only reads; RV(changed) is always false.
version_added: "0.1.0"
options:
  path:
    description:
      - The service's request log on this load balancer, for example
        C(/var/log/nginx/bluegreen-sampleapp.requests.log).
      - A file that does not exist yet is an empty log.
    type: path
    required: true
  state:
    description:
      - V(mark) returns RV(mark), the end of the log now, and reads nothing.
      - V(read) reads the lines written since O(since) and returns what they count.
    type: str
    required: true
    choices: [mark, read]
  since:
    description:
      - With O(state=read), the mark to read from, exactly as RV(mark) returned it (by
        O(state=mark), or by the previous O(state=read) to continue from there).
      - Required with O(state=read); a mark of another O(path) is refused.
    type: dict
  exclude_routes:
    description:
      - Request paths (C($uri), exact, without the query string) left out of every colour's
        figures, such as health checks and C(/metrics) scrapes. Their lines are counted in
        RV(excluded) only.
    type: list
    elements: str
    default: []
  max_routes:
    description:
      - How many routes each colour's C(routes) keeps, the busiest (most requests) first; the
        others are merged under C(other).
      - V(0) merges every route under C(other).
    type: int
    default: 50
  named_routes:
    description:
      - Routes whose figures are wanted whatever their traffic, each a path (C(/generate))
        or a prefix ending in C(*) (C(/reports/*)). Each colour gets C(named_routes) with
        each one's requests, errors and latency histogram, over every route it matches;
        a route matched by two counts in the first only.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode runs it as usual.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on every load balancer with the same windows, and add the figures up; every count
    and histogram bucket adds across load balancers.
  - nginx writes to the rotated file until it reopens its logs (logrotate's C(postrotate)
    signal), so lines it writes there after a read that followed the rotation are not counted.
    A line cut short at the end of a rotated file is counted in RV(unparsed).
  - The task needs read access to the log; nginx's logs are often readable by root and the
    C(adm) group only, so use C(become).
seealso:
  - name: nginx log_format
    description: The escape=json log format and the variables the log line is made of.
    link: https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format
  - module: golden_signals
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Mark the request log before the new colour takes traffic
  nginx_requests:
    path: /var/log/nginx/bluegreen-sampleapp.requests.log
    state: mark
  become: true
  register: requests_mark

- name: Read what users got since the mark
  nginx_requests:
    path: /var/log/nginx/bluegreen-sampleapp.requests.log
    state: read
    since: "{{ requests_mark.mark }}"
    exclude_routes: [/healthz, /metrics]
    max_routes: 20
  become: true
  register: requests_window

- name: Fail on a window that is missing lines or has green errors
  ansible.builtin.assert:
    that:
      - not requests_window.lost
      - (requests_window.colours.green.errors | default(0)) == 0
    fail_msg: "green: {{ requests_window.colours.green | default({}) }}"

- name: Read the next window, continuing exactly where the previous one ended
  nginx_requests:
    path: /var/log/nginx/bluegreen-sampleapp.requests.log
    state: read
    since: "{{ requests_window.mark }}"
  become: true
"""

RETURN = r"""
mark:
  description:
    - A place in the log to read from later, to pass as O(since) unchanged.
    - With O(state=mark), the end of the log's last complete line now (its size, unless nginx
      is writing a line); with O(state=read), the end of what was read.
    - C(inode) is V(null) and C(offset) V(0) when there is no file at O(path); a later read
      then reads the file created there from its start.
  returned: success
  type: dict
  contains:
    path:
      description: O(path).
      type: str
      sample: /var/log/nginx/bluegreen-sampleapp.requests.log
    inode:
      description: The inode of the file at O(path), or V(null) when there was none.
      type: int
      sample: 1835021
    offset:
      description: The byte offset in that file.
      type: int
      sample: 482113
    at:
      description: When the mark was taken, in seconds since the epoch.
      type: float
      sample: 1733500000.512
  sample: {"path": "/var/log/nginx/bluegreen-sampleapp.requests.log", "inode": 1835021,
           "offset": 482113, "at": 1733500000.512}
window:
  description: The window that was read.
  returned: success and O(state=read)
  type: dict
  contains:
    since:
      description: C(at) of O(since).
      type: float
      sample: 1733500000.512
    until:
      description: When the log was read (C(at) of the new RV(mark)).
      type: float
      sample: 1733500300.904
    seconds:
      description: C(until) minus C(since) (V(0) if the clock went back).
      type: float
      sample: 300.392
colours:
  description:
    - Per colour that at least one counted line was routed to, its figures. Lines of
      O(exclude_routes) count for no colour.
    - C(requests), C(errors) (status 500 or more), C(statuses) (count per status, the status
      as a string key), C(latency_ms) (count per C(request_time) in whole milliseconds,
      rounded, as a string key; nginx logs milliseconds, so the histogram is exact and adds
      up across load balancers), C(bytes) (response body bytes), C(upstream_ms),
      C(no_upstream_time) and C(routes).
    - C(upstream_ms) counts the requests per upstream time in whole milliseconds, as
      C(latency_ms) does per request time. The upstream time (the sum of
      C($upstream_response_time)) is what the colour's servers took, without the client's
      connection.
      C(no_upstream_time) counts the requests that had none (C(-), as no server answered, or a
      value missing or unreadable); the two add up to C(requests).
    - C(routes) maps each of the O(max_routes) busiest C(uri)s, and C(other) for the rest,
      to its C(requests), C(errors) and C(latency_ms).
    - With O(named_routes), C(named_routes) maps each of them to the same figures over the
      routes it matches.
  returned: success and O(state=read)
  type: dict
  sample:
    green:
      requests: 3
      errors: 1
      statuses: {"200": 2, "502": 1}
      latency_ms: {"11": 1, "12": 1, "30": 1}
      bytes: 246
      upstream_ms: {"10": 1, "11": 1}
      no_upstream_time: 1
      routes:
        /notes: {"requests": 2, "errors": 0, "latency_ms": {"11": 1, "12": 1}}
        /notes/new: {"requests": 1, "errors": 1, "latency_ms": {"30": 1}}
unrouted:
  description: Lines nginx answered itself (empty C(upstream)), such as maintenance 503s.
  returned: success and O(state=read)
  type: int
  sample: 0
excluded:
  description: Lines of O(exclude_routes).
  returned: success and O(state=read)
  type: int
  sample: 12
unparsed:
  description:
    - Lines that are not a request (not JSON, a field missing or unreadable).
    - Not called C(skipped), which Ansible reads as "the task was skipped".
  returned: success and O(state=read)
  type: int
  sample: 0
lines:
  description:
    - Complete lines read; the requests of every colour plus RV(unrouted), RV(excluded) and
      RV(unparsed).
  returned: success and O(state=read)
  type: int
  sample: 15
rotated:
  description: Whether the log was rotated since the mark and the rotated part was found and read.
  returned: success and O(state=read)
  type: bool
  sample: false
lost:
  description:
    - Whether lines written after the mark could not be read (the log was truncated, deleted or
      rotated out of reach), so the window is incomplete; a warning says why.
    - A reader must then treat the window as inconclusive.
  returned: success and O(state=read)
  type: bool
  sample: false
"""

import os
import stat
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_requests import (
    FileState,
    Mark,
    NginxRequestsError,
    ReadPlan,
    Tally,
    complete_lines,
    parse_mark,
    plan_read,
    rotated_candidates,
    validate_max_routes,
    validate_named_routes,
    window,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", required=True, choices=["mark", "read"]),
    since=dict(type="dict"),
    exclude_routes=dict(type="list", elements="str", default=[]),
    max_routes=dict(type="int", default=50),
    named_routes=dict(type="list", elements="str", default=[]),
)

READ_CHUNK = 1 << 20


def open_log(path: str) -> int | None:
    """A descriptor of the log at ``path``, or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NginxRequestsError(f"{path} is not a regular file: set path to nginx's request log")
    return fd


def file_state(fd: int, offset: int) -> FileState:
    """The open file's inode and size, and whether ``offset`` starts a line in it."""
    info = os.fstat(fd)
    line_start = offset == 0 or (offset <= info.st_size and os.pread(fd, 1, offset - 1) == b"\n")
    return FileState(inode=info.st_ino, size=info.st_size, line_start=line_start)


def find_rotated(path: str, inode: int) -> int | None:
    """A descriptor of the rotated log beside ``path`` that has ``inode``, or None."""
    try:
        names = os.listdir(os.path.dirname(path) or ".")
    except OSError:
        return None
    for candidate in rotated_candidates(path, names):
        try:
            if os.stat(candidate).st_ino != inode:
                continue
            fd = open_log(candidate)
        except (OSError, NginxRequestsError):
            continue
        if fd is not None and os.fstat(fd).st_ino == inode:
            return fd
        if fd is not None:
            os.close(fd)
    return None


def last_line_end(fd: int, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - READ_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def read_lines(fd: int, start: int, end: int, tally: Tally, final: bool = False) -> int:
    """Count the complete lines from ``start`` to ``end``; the offset after the last one.

    A last line without its newline is left for the next read, or, when ``final`` (a
    rotated file, never read again), counted as unparsed.
    """
    os.lseek(fd, start, os.SEEK_SET)
    position = start
    pending: list[bytes] = []
    while position < end:
        chunk = os.read(fd, min(READ_CHUNK, end - position))
        if not chunk:
            break
        position += len(chunk)
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        lines, rest = complete_lines(b"".join([*pending, chunk]))
        pending = [rest] if rest else []
        for line in lines:
            tally.add_line(line)
    rest_length = sum(len(piece) for piece in pending)
    if final and rest_length:
        tally.add_fragment()
        return position
    return position - rest_length


def take_mark(path: str) -> Mark:
    fd = open_log(path)
    if fd is None:
        return Mark(path=path, inode=None, offset=0, at=time.time())
    try:
        info = os.fstat(fd)
        at = time.time()
        return Mark(path=path, inode=info.st_ino, offset=last_line_end(fd, info.st_size), at=at)
    finally:
        os.close(fd)


def read_window(path: str, mark: Mark, tally: Tally) -> tuple[Mark, ReadPlan]:
    """Count the lines after ``mark`` into ``tally``; the new mark, and where they were."""
    current_fd = open_log(path)
    rotated_fd = None
    try:
        current = None if current_fd is None else file_state(current_fd, mark.offset)
        until = time.time()
        if mark.inode is not None and (current is None or current.inode != mark.inode):
            rotated_fd = find_rotated(path, mark.inode)
        rotated = None if rotated_fd is None else file_state(rotated_fd, mark.offset)
        plan = plan_read(mark, current, rotated)
        if plan.rotated_start is not None and rotated_fd is not None and rotated is not None:
            read_lines(rotated_fd, plan.rotated_start, rotated.size, tally, final=True)
        offset = 0
        if plan.current_start is not None and current_fd is not None and current is not None:
            offset = read_lines(current_fd, plan.current_start, current.size, tally)
        inode = None if current is None else current.inode
        return Mark(path=path, inode=inode, offset=offset, at=until), plan
    finally:
        for fd in (current_fd, rotated_fd):
            if fd is not None:
                os.close(fd)


def unreadable(path: str, exc: OSError) -> str:
    return (
        f"cannot read {path}: {exc}. nginx's logs are often readable by root and the adm group "
        "only: run the task with become, or check path"
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    path = params["path"]
    try:
        if params["state"] == "mark":
            module.exit_json(changed=False, mark=take_mark(path).as_dict())
        since = parse_mark(params["since"], path)
        max_routes = validate_max_routes(params["max_routes"])
        named_routes = validate_named_routes(params["named_routes"])
        tally = Tally(params["exclude_routes"])
        mark, plan = read_window(path, since, tally)
    except NginxRequestsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        module.fail_json(msg=unreadable(path, exc), changed=False)
    if plan.reason:
        module.warn(f"the window is incomplete: {plan.reason}")
    module.exit_json(
        changed=False,
        window=window(since.at, mark.at),
        mark=mark.as_dict(),
        rotated=plan.rotated,
        lost=plan.lost,
        **tally.as_dict(max_routes, named_routes),
    )


if __name__ == "__main__":
    main()
