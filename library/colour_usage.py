#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: colour_usage
short_description: Measure what a colour's own processes use and log, from systemd, on its host
description:
  - On an app host, measures one colour's unit (for example C(sampleapp@green)) over a
    window, with nothing installed beside it. It measures the CPU its processes used, from
    systemd's accounting of the unit (C(CPUUsageNSec); where systemd leaves it unset, as
    on cgroup v1 hosts whose controllers it cannot use, the kernel's count for the unit's
    cgroup, C(cpu.stat) or C(cpuacct.usage), named in RV(unit.cpu_source)); their memory
    now (C(MemoryCurrent)); the host's memory in use (C(/proc/meminfo)) and the use of the
    filesystem holding O(disk_path); and the error events the unit wrote to its journal.
  - V(mark) returns RV(mark), where a window starts. V(read) measures the window from the
    mark given in O(since) to now and returns the next RV(mark), so windows chained mark
    to mark cover the time once.
  - CPU is given as a share of the host's CPUs (RV(cpu.percent_of_host), what the
    C(cpu) signal judges) and of one CPU (RV(cpu.percent_of_core), as C(top) shows it).
    A unit restarted since the mark counts from its new start (RV(cpu.restarted)).
  - An error event is a journal line at priority C(err) or above, a line with the word
    C(ERROR), C(CRITICAL), C(FATAL), C(ALERT) or C(EMERG), or a Python traceback that no
    such line introduced. A logged exception (its line and its traceback, with the
    tracebacks chained to it) is one event.
  - The first three events are kept as excerpts (twelve lines each, each line cut to 300
    characters), with every secret replaced by C(********) first. The secrets are the
    values of O(secret_names) in O(env_file) and the values of its secret-looking
    variables (names with PASSWORD, SECRET, TOKEN, KEY, DATABASE_URL...).
  - Counters systemd does not keep (a unit without C(CPUAccounting) or
    C(MemoryAccounting)) are returned as null with the reason in RV(cpu.problem) or
    RV(memory.problem), never as zero.
  - The module only reads; RV(changed) is always false.
  - The decisions are in module_utils/colour_usage.py.
version_added: "0.1.0"
options:
  unit:
    description:
      - The colour's systemd unit, for example C(sampleapp@green). A unit systemd does not
        know is refused.
    type: str
    required: true
  state:
    description:
      - V(mark) returns RV(mark) and measures nothing.
      - V(read) measures from O(since) to now.
    type: str
    required: true
    choices: [mark, read]
  since:
    description:
      - With O(state=read), the mark to measure from, exactly as RV(mark) returned it. A
        mark of another O(unit) is refused.
    type: dict
  disk_path:
    description:
      - A path on the filesystem whose use RV(disk.percent) gives, normally where the
        colour's releases are installed.
    type: path
    default: /
  env_file:
    description:
      - The colour's env file, read on the host for the secrets to redact from the log
        excerpts. A file that does not exist gives no secrets.
    type: path
  secret_names:
    description:
      - Variables of O(env_file) whose values never appear in an excerpt, beside those
        whose names look secret.
    type: list
    elements: str
    default: []
  max_log_lines:
    description:
      - The most journal lines read for a window, the last ones kept; RV(log.lines) says
        how many were read.
    type: int
    default: 20000
  container_project:
    description:
      - "The colour's Compose project in the container runtime (C(<name>-<colour>)): the CPU
        time and memory are then its containers' cgroups' (the unit only runs Compose),
        and a replaced container counts as a restart. The log is still the unit's journal,
        where Compose writes what the containers print."
    type: str
  engine:
    description: The container engine's command line program, with O(container_project).
    type: path
    default: /usr/bin/docker
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Mark where the window of the green colour starts
  colour_usage:
    unit: sampleapp@green
    state: mark
  register: start

- name: Measure the window
  colour_usage:
    unit: sampleapp@green
    state: read
    since: "{{ start.mark }}"
    disk_path: /opt/sampleapp
    env_file: /etc/sampleapp/green.env
    secret_names: [SAMPLEAPP_SECRET_KEY]
  register: used
"""

RETURN = r"""
mark:
  description: Where the next window starts (pass it as O(since)).
  returned: always
  type: dict
  sample: {unit: sampleapp@green, at: 1733500000.1, invocation: 8f0e..., cpu_ns: 1234567890,
           cursor: "s=...;i=4f2"}
window:
  description: The window's start and end (host time, seconds since the epoch) and length.
  returned: state=read
  type: dict
  sample: {since: 1733500000.1, until: 1733500010.2, seconds: 10.1}
unit:
  description: The unit's state and counters at the end of the window.
  returned: state=read
  type: dict
cpus:
  description: How many CPUs this host's processes may use.
  returned: state=read
  type: int
cpu:
  description:
    - C(seconds) of CPU the unit's processes used in the window; C(percent_of_host), of
      all the host's CPUs; C(percent_of_core), of one CPU; C(restarted); C(problem) when
      systemd does not account the unit's CPU.
  returned: state=read
  type: dict
memory:
  description:
    - C(process_bytes), the unit's memory now; C(host_percent), the host's memory in
      use; C(problem) when systemd does not account the unit's memory.
  returned: state=read
  type: dict
disk:
  description: C(percent), the use of the filesystem holding O(disk_path).
  returned: state=read
  type: dict
log:
  description:
    - C(events), C(tracebacks), C(lines) read and C(excerpts) (lists of lines, redacted)
      of the unit's journal in the window; null when the journal could not be read.
  returned: state=read
  type: dict
log_problem:
  description: Why the journal could not be read, or null.
  returned: state=read
  type: str
"""

import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_usage import (
    SHOW_PROPERTIES,
    ColourUsageError,
    LogCount,
    UnitUsage,
    cgroup_cpu_files,
    cgroup_cpu_ns,
    count_log_errors,
    counter,
    disk_used_percent,
    journal_lines,
    mark_from,
    memory_used_percent,
    parse_mark,
    parse_show,
    unit_usage,
    window,
    with_cgroup_cpu,
)
from ansible.module_utils.container_runtime import cgroup_paths, cgroup_usage_files
from ansible.module_utils.env_file import parse_env_file
from ansible.module_utils.env_file import secret_values as secret_looking_values
from ansible.module_utils.release_journal import redact

ARGUMENT_SPEC: dict[str, Any] = {
    "unit": {"type": "str", "required": True},
    "state": {"type": "str", "required": True, "choices": ["mark", "read"]},
    "since": {"type": "dict"},
    "disk_path": {"type": "path", "default": "/"},
    "env_file": {"type": "path"},
    "secret_names": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "max_log_lines": {"type": "int", "default": 20000},
    "container_project": {"type": "str"},
    "engine": {"type": "path", "default": "/usr/bin/docker"},
}


def colour_usage(module: AnsibleModule, unit: str) -> UnitUsage:
    usage = read_unit(module, unit)
    project = module.params["container_project"]
    return with_containers(module, usage, project) if project else usage


def read_unit(module: AnsibleModule, unit: str) -> UnitUsage:
    rc, out, err = module.run_command(
        ["systemctl", "show", unit, "--property=" + ",".join(SHOW_PROPERTIES)]
    )
    if rc != 0:
        raise ColourUsageError(f"systemctl show {unit} failed: {err.strip() or out.strip()}")
    usage = unit_usage(unit, parse_show(out))
    if usage.cpu_ns is not None:
        return usage
    for path in cgroup_cpu_files(usage.control_group):
        try:
            cpu_ns = cgroup_cpu_ns(path, Path(path).read_text())
        except OSError:
            continue
        if cpu_ns is not None:
            return with_cgroup_cpu(usage, path, cpu_ns)
    return usage


def container_pids(module: AnsibleModule, project: str) -> list[tuple[str, int]]:
    """(ID, main PID) of each running container of a Compose project."""
    engine = module.params["engine"]
    rc, out, err = module.run_command(
        [
            engine,
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={project}",
        ]
    )
    if rc != 0:
        raise ColourUsageError(f"{engine} ps failed: {(err or out).strip()[:300]}")
    ids = out.split()
    if not ids:
        return []
    rc, out, err = module.run_command(
        [engine, "inspect", "--format", "{{.Id}} {{.State.Pid}}", *ids]
    )
    if rc != 0:
        raise ColourUsageError(f"{engine} inspect failed: {(err or out).strip()[:300]}")
    found = []
    for line in out.splitlines():
        container, _, pid = line.partition(" ")
        if pid.strip().isdigit() and int(pid) > 0:
            found.append((container, int(pid)))
    return found


def first_counter(paths: list[str], read: Callable[[str, str], int | None]) -> int | None:
    for path in paths:
        try:
            value = read(path, Path(path).read_text())
        except OSError:
            continue
        if value is not None:
            return value
    return None


def with_containers(module: AnsibleModule, usage: UnitUsage, project: str) -> UnitUsage:
    """The colour's usage in the container runtime: the CPU time and memory of its
    containers' cgroups (the unit only runs Compose), and an invocation that changes when
    a container is replaced, whose counters start again."""
    cpu_total, memory_total, ids = 0, 0, []
    for container, pid in container_pids(module, project):
        try:
            paths = cgroup_paths(Path(f"/proc/{pid}/cgroup").read_text())
        except OSError:
            continue
        files = cgroup_usage_files(paths)
        cpu = first_counter(files["cpu"], cgroup_cpu_ns)
        memory = first_counter(files["memory"], lambda _path, text: counter(text.strip()))
        if cpu is None:
            continue
        ids.append(container[:12])
        cpu_total += cpu
        memory_total += memory or 0
    return dataclasses.replace(
        usage,
        invocation=f"{usage.invocation}/{'+'.join(ids)}",
        cpu_ns=cpu_total if ids else None,
        memory_bytes=memory_total if ids else None,
        cpu_source=f"containers of {project}",
    )


def journal(unit: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["journalctl", "--no-pager", "--quiet", "-u", unit, "-o", "json", *args],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=60,
    )


def last_cursor(unit: str) -> str | None:
    """The cursor of the unit's last journal entry; None when it has none yet."""
    done = journal(unit, ["-n", "1", "--output-fields=MESSAGE"])
    for line in reversed(done.stdout.splitlines()):
        try:
            cursor = json.loads(line).get("__CURSOR")
        except ValueError:
            continue
        if isinstance(cursor, str):
            return cursor
    return None


def secrets(env_file: str | None, names: list[str]) -> set[str]:
    if not env_file or not Path(env_file).is_file():
        return set()
    values, _ = parse_env_file(Path(env_file).read_text(errors="replace"))
    found = {values[name] for name in names if values.get(name)}
    return found | secret_looking_values(values)


def read_log(
    unit: str, cursor: str | None, since: float, limit: int, hidden: set[str]
) -> tuple[LogCount | None, str | None, str | None]:
    """(the window's error events, why the journal could not be read, the last cursor)."""
    start = [f"--after-cursor={cursor}"] if cursor else [f"--since=@{int(since)}"]
    try:
        done = journal(unit, [*start, "-n", str(limit), "--output-fields=MESSAGE,PRIORITY"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"journalctl could not be run: {exc}", cursor
    if done.returncode != 0:
        return None, f"journalctl failed: {done.stderr.strip()[:300]}", cursor
    entries = []
    for line in done.stdout.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    lines = journal_lines(entries)
    last = next((ln.cursor for ln in reversed(lines) if ln.cursor), cursor)
    count = count_log_errors(lines, lambda text: str(redact(text, hidden)))
    return count, None, last


def host_memory() -> float | None:
    try:
        return memory_used_percent(Path("/proc/meminfo").read_text())
    except OSError:
        return None


def disk_percent(path: str) -> float | None:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return disk_used_percent(stat.f_blocks, stat.f_bfree, stat.f_bavail)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    unit = params["unit"]
    try:
        if params["max_log_lines"] < 1:
            raise ColourUsageError(
                f"max_log_lines is {params['max_log_lines']}: give 1 or more journal lines"
            )
        if params["state"] == "mark":
            usage = colour_usage(module, unit)
            module.exit_json(
                changed=False, mark=mark_from(usage, time.time(), last_cursor(unit)).as_dict()
            )
        if params["since"] is None:
            raise ColourUsageError(
                "since is required with state=read: the mark of state=mark or of the last read"
            )
        since = parse_mark(params["since"], unit)
        usage = colour_usage(module, unit)
        at = time.time()
        hidden = secrets(params["env_file"], params["secret_names"])
        log, problem, cursor = read_log(
            unit, since.cursor, since.at, params["max_log_lines"], hidden
        )
        module.exit_json(
            changed=False,
            **window(
                since,
                usage,
                at,
                len(os.sched_getaffinity(0)),
                host_memory(),
                disk_percent(params["disk_path"]),
                log,
                problem,
                cursor,
            ),
        )
    except ColourUsageError as exc:
        module.fail_json(msg=str(exc), changed=False)


if __name__ == "__main__":
    main()
