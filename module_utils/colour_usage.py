# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

"""What a colour's own processes used in a window, and what they logged: pure logic.

The colour_usage module marks, on an app host, where a window starts (the unit's CPU
counter from systemd's accounting, its journal cursor, the time) and reads the window
from that mark: the CPU its processes used, their memory now, the host's memory and
disk, and the error lines and tracebacks the unit wrote to its journal. Everything here
works on text and numbers the module gathered, so it is tested without systemd.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# systemd prints an unset counter as "[not set]" and an unlimited or unknown one as
# UINT64_MAX; neither is a measurement.
_UNSET = {"", "[not set]", "infinity", str(2**64 - 1)}
SHOW_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "InvocationID",
    "ControlGroup",
    "CPUUsageNSec",
    "MemoryCurrent",
    "TasksCurrent",
    "CPUAccounting",
    "MemoryAccounting",
)

# A log line is an error event when it carries a level at or above ERROR as a word
# (Python logging, gunicorn, Django and most servers write it so), or starts a Python
# traceback that no such line introduced (a traceback printed on its own, or by a
# logging handler without the level in its format).
_LEVEL_RE = re.compile(r"(?<![\w-])(ERROR|CRITICAL|FATAL|EMERG|ALERT)(?![\w-])")
_TRACEBACK = "Traceback (most recent call last):"
# Journal priorities 0..3 (emerg, alert, crit, err): a service that logs to the journal
# with levels (sd_journal, SyslogLevelPrefix "<3>") marks its errors so.
_ERROR_PRIORITY = 3
EXCERPTS = 3
EXCERPT_LINES = 12
EXCERPT_LINE_CHARS = 300


class ColourUsageError(Exception):
    """Input the module cannot use: the message names it and what to give instead."""


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B unit` output (A=value lines) as a mapping."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def counter(value: str | None) -> int | None:
    """A systemd counter as an int, or None when it is unset or unknown."""
    if value is None or value.strip() in _UNSET:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


@dataclass(frozen=True)
class UnitUsage:
    """One reading of a unit's accounting; None where systemd does not account it."""

    unit: str
    active: str
    invocation: str
    cpu_ns: int | None
    memory_bytes: int | None
    tasks: int | None
    control_group: str = ""
    # Where cpu_ns was read: systemd's CPUUsageNSec, or the unit's cgroup file.
    cpu_source: str = "systemd"

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "active": self.active,
            "invocation": self.invocation,
            "cpu_ns": self.cpu_ns,
            "cpu_source": self.cpu_source if self.cpu_ns is not None else None,
            "memory_bytes": self.memory_bytes,
            "tasks": self.tasks,
        }


def unit_usage(unit: str, show: Mapping[str, str]) -> UnitUsage:
    """The accounting of `unit` from its `systemctl show` properties.

    A unit systemd does not know is refused: a window of it would be empty, not idle.
    """
    if show.get("LoadState") == "not-found":
        raise ColourUsageError(
            f"systemd has no unit {unit}: name the colour's unit, e.g. sampleapp@green "
            "(bluegreen_service_name@colour)"
        )
    return UnitUsage(
        unit=unit,
        active=show.get("ActiveState", "unknown"),
        invocation=show.get("InvocationID", ""),
        cpu_ns=counter(show.get("CPUUsageNSec")),
        memory_bytes=counter(show.get("MemoryCurrent")),
        tasks=counter(show.get("TasksCurrent")),
        control_group=show.get("ControlGroup", ""),
    )


def cgroup_cpu_files(control_group: str, root: str = "/sys/fs/cgroup") -> list[str]:
    """Where the kernel keeps the CPU time of the unit's cgroup, most direct first.

    systemd leaves CPUUsageNSec unset where it cannot use the cpuacct controller (cgroup
    v1 hosts whose controllers are mounted apart, containers): the kernel still counts
    the cgroup's time, in cgroup v2's cpu.stat (the unified hierarchy of a hybrid host,
    or the root of a v2 one) or in v1's cpuacct.usage.
    """
    if not control_group.startswith("/"):
        return []
    return [
        f"{root}/unified{control_group}/cpu.stat",
        f"{root}{control_group}/cpu.stat",
        f"{root}/cpuacct{control_group}/cpuacct.usage",
        f"{root}/cpu,cpuacct{control_group}/cpuacct.usage",
    ]


def cgroup_cpu_ns(path: str, text: str) -> int | None:
    """Nanoseconds of CPU in a cgroup file's text: cpu.stat's usage_usec or cpuacct.usage."""
    if path.endswith("cpu.stat"):
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                number = counter(value)
                return None if number is None else number * 1000
        return None
    return counter(text.strip())


def with_cgroup_cpu(usage: UnitUsage, path: str, cpu_ns: int) -> UnitUsage:
    return UnitUsage(
        usage.unit,
        usage.active,
        usage.invocation,
        cpu_ns,
        usage.memory_bytes,
        usage.tasks,
        usage.control_group,
        path,
    )


def memory_used_percent(meminfo: str) -> float | None:
    """The host's memory in use, as `free` counts it: 100 * (1 - MemAvailable / MemTotal)."""
    fields: dict[str, int] = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0])
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        return None
    return 100 * (1 - available / total)


def disk_used_percent(blocks: int, free: int, available: int) -> float | None:
    """A filesystem's use as `df` shows it: used / (used + available to users)."""
    used = blocks - free
    if used < 0 or used + available <= 0:
        return None
    return 100 * used / (used + available)


@dataclass(frozen=True)
class Mark:
    """Where a window starts on one host."""

    unit: str
    at: float
    invocation: str
    cpu_ns: int | None
    cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "at": self.at,
            "invocation": self.invocation,
            "cpu_ns": self.cpu_ns,
            "cursor": self.cursor,
        }


def mark_from(usage: UnitUsage, at: float, cursor: str | None) -> Mark:
    return Mark(usage.unit, at, usage.invocation, usage.cpu_ns, cursor or None)


def parse_mark(data: Any, unit: str) -> Mark:
    """A mark as the module returned it; a mark of another unit is refused."""
    if not isinstance(data, Mapping):
        raise ColourUsageError(
            "since must be the mark colour_usage returned (state=mark, or the last read's mark)"
        )
    if not data:
        raise ColourUsageError(
            "since is empty: no mark was taken on this host (the colour_usage call that "
            "should have returned it failed; its message says why)"
        )
    if data.get("unit") != unit:
        raise ColourUsageError(
            f"since is a mark of {data.get('unit')!r}, not of {unit}: give the mark taken "
            "on this unit"
        )
    at = data.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ColourUsageError(f"since.at must be the time of the mark, got {at!r}")
    cpu = data.get("cpu_ns")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0):
        raise ColourUsageError(f"since.cpu_ns must be a count of nanoseconds or null, got {cpu!r}")
    cursor = data.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ColourUsageError(f"since.cursor must be a journal cursor or null, got {cursor!r}")
    return Mark(unit, float(at), str(data.get("invocation") or ""), cpu, cursor or None)


@dataclass(frozen=True)
class CpuUse:
    seconds: float | None
    restarted: bool
    reason: str | None


def cpu_used(mark: Mark, now: UnitUsage) -> CpuUse:
    """CPU seconds the unit's processes used since the mark.

    A unit restarted since the mark (another invocation) counts from its start: its
    counter began again at zero, and what the old processes used after the mark is gone.
    """
    if now.cpu_ns is None:
        return CpuUse(
            None,
            False,
            f"systemd does not account {now.unit}'s CPU (CPUUsageNSec is not set): "
            "the unit needs CPUAccounting=yes",
        )
    restarted = bool(mark.invocation and now.invocation and mark.invocation != now.invocation)
    if restarted or mark.cpu_ns is None:
        return CpuUse(now.cpu_ns / 1e9, restarted, None)
    if now.cpu_ns < mark.cpu_ns:
        # Same invocation, smaller counter: a reset systemd did not announce.
        return CpuUse(now.cpu_ns / 1e9, True, None)
    return CpuUse((now.cpu_ns - mark.cpu_ns) / 1e9, False, None)


# --- the journal ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    message: str
    priority: int | None
    cursor: str | None


def journal_lines(json_lines: Iterable[Mapping[str, Any]]) -> list[LogLine]:
    """`journalctl -o json` entries as lines; a MESSAGE journald kept as bytes is decoded."""
    lines: list[LogLine] = []
    for entry in json_lines:
        message = entry.get("MESSAGE")
        if isinstance(message, list):
            message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode(
                "utf-8", "replace"
            )
        elif message is None:
            message = ""
        priority = entry.get("PRIORITY")
        try:
            level = int(priority) if priority is not None else None
        except (TypeError, ValueError):
            level = None
        cursor = entry.get("__CURSOR")
        lines.append(LogLine(str(message), level, cursor if isinstance(cursor, str) else None))
    return lines


def is_error_line(line: LogLine) -> bool:
    if line.priority is not None and line.priority <= _ERROR_PRIORITY:
        return True
    return bool(_LEVEL_RE.search(line.message))


_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


@dataclass
class LogCount:
    events: int = 0
    tracebacks: int = 0
    lines: int = 0
    excerpts: list[list[str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "tracebacks": self.tracebacks,
            "lines": self.lines,
            "excerpts": self.excerpts,
        }


def count_log_errors(lines: Sequence[LogLine], redact: Callable[[str], str]) -> LogCount:
    """Error events among `lines`: a line at an error level, or a traceback none introduced.

    An event goes on over the lines that belong to it: indented lines, a traceback
    (to the exception line that ends it) and the tracebacks chained to it. So a logged
    exception (an ERROR line, then its traceback) is one event, and so is a chain of
    exceptions. The first EXCERPTS events are kept, each to EXCERPT_LINES lines, redacted
    by `redact` before a line is cut to EXCERPT_LINE_CHARS, so a cut never leaves part of
    a secret.
    """
    count = LogCount(lines=len(lines))
    open_event = in_traceback = False
    after_traceback = False
    current: list[str] | None = None

    def keep(message: str) -> None:
        if current is not None and len(current) < EXCERPT_LINES:
            current.append(message)

    previous = ""
    for line in lines:
        message, before, previous = line.message, previous, line.message
        header = message.startswith(_TRACEBACK)
        indented = message[:1] in (" ", "\t")
        if open_event and header:
            count.tracebacks += 1
            in_traceback, after_traceback = True, False
            keep(message)
            continue
        if open_event and in_traceback:
            keep(message)
            if not indented:
                # The exception line ends the traceback; a chained one may follow.
                in_traceback, after_traceback = False, True
            continue
        if open_event and (indented or (after_traceback and (not message or message in _CHAINED))):
            keep(message)
            continue
        open_event = in_traceback = after_traceback = False
        if not (header or is_error_line(line)):
            continue
        count.events += 1
        open_event, in_traceback = True, header
        count.tracebacks += header
        # A bare traceback's line before it is usually what the handler said (the message
        # of logging's last-resort handler, which prints no level): kept as context.
        context = [before] if header and before.strip() else []
        current = [*context, message] if len(count.excerpts) < EXCERPTS else None
        if current is not None:
            count.excerpts.append(current)
    count.excerpts = [
        [redact(text)[:EXCERPT_LINE_CHARS] for text in excerpt] for excerpt in count.excerpts
    ]
    return count


def window(
    mark: Mark,
    now: UnitUsage,
    at: float,
    cpus: int,
    host_memory: float | None,
    disk: float | None,
    log: LogCount | None,
    log_problem: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    """The read: what the colour's unit used between the mark and `at`, and the new mark."""
    seconds = max(at - mark.at, 0.0)
    cpu = cpu_used(mark, now)
    share = cores = None
    if cpu.seconds is not None and seconds > 0 and cpus > 0:
        cores = cpu.seconds / seconds
        share = 100 * cores / cpus
    return {
        "window": {"since": mark.at, "until": at, "seconds": round(seconds, 3)},
        "unit": now.as_dict(),
        "cpus": cpus,
        "cpu": {
            "seconds": cpu.seconds,
            "percent_of_host": share,
            "percent_of_core": None if cores is None else 100 * cores,
            "restarted": cpu.restarted,
            "problem": cpu.reason,
        },
        "memory": {
            "process_bytes": now.memory_bytes,
            "problem": None
            if now.memory_bytes is not None
            else (
                f"systemd does not account {now.unit}'s memory (MemoryCurrent is not set): "
                "the unit needs MemoryAccounting=yes"
            ),
            "host_percent": host_memory,
        },
        "disk": {"percent": disk},
        "log": None if log is None else log.as_dict(),
        "log_problem": log_problem,
        "mark": mark_from(now, at, cursor or mark.cursor).as_dict(),
    }
