"""Showing a playbook run as it happens, fed by ansible-runner events.

On a terminal: a live view with one row per step (a task or handler) showing each host's
status and the step's duration, a spinner on the running step, failures in full as they
happen, and a per-host summary at the end. Elsewhere (CI logs, pipes): one plain line per
event, e.g. ``[ 12.3s] Deploy to idle colour | app-green | changed``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from bluegreen.runner import event_failure_message, host_stats, plain_text

MAX_FAILURE_LINES = 25

STATUS_STYLES = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "bold red",
    "skipped": "cyan",
    "failed (ignored)": "magenta",
    "running": "dim",
}
_BAD = {"failed", "unreachable"}
_ICONS = {"ok": "✔", "changed": "✔", "skipped": "↷", "failed": "✘"}
_TASK_START = {"playbook_on_task_start", "playbook_on_handler_task_start"}


def event_time(event: Mapping[str, Any]) -> float | None:
    """When ansible-runner says the event happened, as a Unix timestamp."""
    created = event.get("created")
    if not created:
        return None
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return None


def host_status(event: Mapping[str, Any]) -> str | None:
    """ok / changed / failed / failed (ignored) / skipped / unreachable, for a host result."""
    name = event.get("event")
    data = event.get("event_data") or {}
    if name in ("runner_on_ok", "runner_on_async_ok"):
        return "changed" if (data.get("res") or {}).get("changed") else "ok"
    if name in ("runner_on_failed", "runner_on_async_failed"):
        return "failed (ignored)" if data.get("ignore_errors") else "failed"
    if name == "runner_on_skipped":
        return "skipped"
    if name == "runner_on_unreachable":
        return "unreachable"
    return None


# Plumbing an operator does not need to watch: role includes, argument validation,
# meta tasks. Shown with -v; their failures are always shown.
_PLUMBING_ACTIONS = {
    "ansible.builtin.include_role",
    "include_role",
    "ansible.builtin.include_tasks",
    "include_tasks",
    "ansible.builtin.meta",
    "meta",
    "ansible.builtin.validate_argument_spec",
    "validate_argument_spec",
}


def is_plumbing(event: Mapping[str, Any]) -> bool:
    data = event.get("event_data") or {}
    task = str(data.get("task") or "")
    return data.get("task_action") in _PLUMBING_ACTIONS or task.startswith(
        "Validating arguments against arg spec"
    )


def step_name(event: Mapping[str, Any]) -> str:
    data = event.get("event_data") or {}
    name = data.get("task") or data.get("name") or data.get("task_action") or "(unnamed task)"
    if event.get("event") == "playbook_on_handler_task_start":
        return f"handler: {name}"
    return str(name)


def failure_lines(message: str, limit: int = MAX_FAILURE_LINES) -> list[str]:
    """The first ``limit`` lines of a failure message, noting how many were left out."""
    lines = message.splitlines() or ["(no message)"]
    if len(lines) > limit:
        return [*lines[:limit], f"... {len(lines) - limit} more lines in the run log"]
    return lines


def result_details(event: Mapping[str, Any]) -> list[str]:
    """What ansible printed for a result beyond its status line (it does so with -v);
    a no_log result arrives here already censored."""
    lines = plain_text(event.get("stdout") or "").splitlines()[1:]
    return [line for line in lines if line.strip()]


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def plain_lines(event: Mapping[str, Any], elapsed: float, verbosity: int = 0) -> list[str]:
    """The plain-text lines for one event (often none)."""
    stamp = f"[{elapsed:5.1f}s]"
    name = event.get("event")
    data = event.get("event_data") or {}
    if name == "playbook_on_play_start":
        return [f"{stamp} PLAY {data.get('name') or data.get('play') or ''}".rstrip()]
    if name in _TASK_START:
        return [f"{stamp} {step_name(event)} | started"] if verbosity else []
    status = host_status(event)
    if status is not None and status not in _BAD and not verbosity and is_plumbing(event):
        return []
    if status is not None:
        lines = [f"{stamp} {step_name(event)} | {data.get('host', '?')} | {status}"]
        if status in _BAD:
            lines += [f"    {line}" for line in failure_lines(event_failure_message(event))]
        elif verbosity:
            lines += [f"    {line}" for line in result_details(event)]
        return lines
    if name == "runner_retry":
        res = data.get("res") or {}
        attempt = f"{res.get('attempts', '?')}/{res.get('retries', '?')}"
        return [f"{stamp} {step_name(event)} | {data.get('host', '?')} | retrying ({attempt})"]
    if name in ("verbose", "warning", "deprecated", "error", "system_warning", "debug"):
        text = plain_text(event.get("stdout") or "")
        return [line for line in text.splitlines() if line.strip()]
    if name == "playbook_on_no_hosts_matched":
        return [f"{stamp} no hosts matched"]
    return []


def summary_table(stats: Mapping[str, Mapping[str, int]], elapsed: float | None) -> Table:
    """Per-host ok/changed/failed/unreachable/skipped counts, captioned with the total time."""
    caption = f"Total elapsed {format_duration(elapsed)}" if elapsed is not None else None
    table = Table(title="Summary", caption=caption, title_justify="left", caption_justify="left")
    table.add_column("host")
    columns = ["ok", "changed", "failed", "unreachable", "skipped"]
    columns += [c for c in ("rescued", "ignored") if any(n.get(c) for n in stats.values())]
    for column in columns:
        table.add_column(column, justify="right")
    for host, counts in stats.items():
        cells = []
        for column in columns:
            value = counts.get(column, 0)
            style = STATUS_STYLES.get(column, "") if value else "dim"
            cells.append(Text(str(value), style=style))
        table.add_row(host, *cells)
    return table


class PlainProgress:
    """One line per event, for output that is not a terminal."""

    def __init__(self, console: Console, verbosity: int = 0, compact: bool = False) -> None:
        self.console = console
        self.verbosity = verbosity
        self.compact = compact
        self.start: float | None = None

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def elapsed(self, event: Mapping[str, Any]) -> float:
        now = event_time(event) or time.time()
        if self.start is None:
            self.start = now
        return now - self.start

    def __call__(self, event: dict[str, Any]) -> None:
        elapsed = self.elapsed(event)
        if event.get("event") == "playbook_on_stats":
            if not self.compact:
                data = event.get("event_data") or {}
                self.console.print(summary_table(host_stats(data), elapsed))
            return
        for line in plain_lines(event, elapsed, self.verbosity):
            if self.compact and not _worth_showing_when_compact(event):
                continue
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _worth_showing_when_compact(event: Mapping[str, Any]) -> bool:
    return host_status(event) in _BAD or event.get("event") == "verbose"


@dataclass
class _Step:
    name: str
    started: float
    hosts: dict[str, str] = field(default_factory=dict)
    notes: list[RenderableType] = field(default_factory=list)
    last_result: float | None = None
    ended: float | None = None

    def status(self) -> str:
        states = set(self.hosts.values())
        if states & _BAD:
            return "failed"
        if "running" in states or not states:
            return "running" if self.ended is None else "ok"
        if states == {"skipped"}:
            return "skipped"
        return "changed" if "changed" in states else "ok"


class LiveProgress:
    """A live rich view of the run for a terminal.

    ansible-runner calls us from the thread that runs the playbook while rich refreshes
    the view from its own thread, hence the lock around every state change and render.
    """

    def __init__(self, console: Console, verbosity: int = 0, compact: bool = False) -> None:
        self.console = console
        self.verbosity = verbosity
        self.compact = compact
        self.start: float | None = None
        self.step: _Step | None = None
        self._lock = threading.RLock()
        self._pending: list[RenderableType] = []
        self._spinner = Spinner("dots", style="cyan")
        self._live = Live(
            self,
            console=console,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._finish_step(None)
        self._flush()
        self._live.stop()

    def __rich__(self) -> RenderableType:
        with self._lock:
            if self.step is None:
                return Text("")
            step = self.step
            return Group(self._row(self._spinner, time.time() - step.started, step), *step.notes)

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._handle(event)
        self._flush()

    def _handle(self, event: dict[str, Any]) -> None:
        now = event_time(event) or time.time()
        if self.start is None:
            self.start = now
        name = event.get("event")
        data = event.get("event_data") or {}
        status = host_status(event)
        if name == "playbook_on_play_start":
            self._finish_step(now)
            if not self.compact:
                play = data.get("name") or data.get("play") or ""
                self._print(Text(f"▶ {play}", style="bold"))
        elif name in _TASK_START:
            self._finish_step(now)
            if self.verbosity or not is_plumbing(event):
                self.step = _Step(name=step_name(event), started=now)
        elif name == "runner_on_start" and self.step is not None:
            self.step.hosts.setdefault(str(data.get("host", "?")), "running")
        elif status in _BAD and self.step is None:
            self._print(_failure_note(str(data.get("host", "?")), status, event))
        elif status is not None and self.step is not None:
            host = str(data.get("host", "?"))
            self.step.hosts[host] = status
            self.step.last_result = now
            if status in _BAD:
                self.step.notes.append(_failure_note(host, status, event))
            elif self.verbosity and (details := result_details(event)):
                self.step.notes.append(
                    Text("\n".join(f"    {line}" for line in details), style="dim")
                )
        elif name == "runner_retry" and self.step is not None:
            res = data.get("res") or {}
            retry = f"retry {res.get('attempts', '?')}/{res.get('retries', '?')}"
            self.step.hosts[str(data.get("host", "?"))] = retry
        elif name == "verbose":
            self._print_verbose(plain_text(event.get("stdout") or ""))
        elif name == "playbook_on_stats":
            self._finish_step(now)
            if not self.compact:
                self._print(summary_table(host_stats(data), now - self.start))

    def _finish_step(self, now: float | None) -> None:
        step, self.step = self.step, None
        if step is None:
            return
        # A step ends with its last host result; the gap to the next step is ansible's.
        step.ended = step.last_result or now or time.time()
        if not self.compact:
            icon = Text(_ICONS.get(step.status(), "•"), style=STATUS_STYLES[step.status()])
            self._print(self._row(icon, step.ended - step.started, step))
        for note in step.notes:
            self._print(note)

    def _row(self, icon: RenderableType, seconds: float, step: _Step) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=2)
        grid.add_column(width=7, justify="right", style="dim")
        grid.add_column(ratio=3, overflow="fold")
        grid.add_column(ratio=2, overflow="fold")
        grid.add_row(icon, format_duration(seconds), step.name, _hosts_text(step.hosts))
        return grid

    def _print_verbose(self, text: str) -> None:
        for line in text.splitlines():
            if not line.strip():
                continue
            style = "red" if "ERROR" in line[:12] else "yellow" if "WARN" in line[:24] else "dim"
            self._print(Text(line, style=style))

    def _print(self, renderable: RenderableType) -> None:
        self._pending.append(renderable)

    def _flush(self) -> None:
        # Printing goes through rich's Live, which takes its own lock and then renders
        # us (taking ours); so print only while not holding ours, or the two deadlock.
        with self._lock:
            pending, self._pending = self._pending, []
        for renderable in pending:
            self._live.console.print(renderable)


def _failure_note(host: str, status: str, event: Mapping[str, Any]) -> RenderableType:
    header = Text(f"   {status}: {host}", style=STATUS_STYLES[status])
    lines = failure_lines(event_failure_message(event))
    return Group(header, Text("\n".join(f"     {line}" for line in lines)))


def _hosts_text(hosts: Mapping[str, str]) -> Text:
    """Hosts grouped by status: ``changed app-green  ok lb1, app-blue``."""
    by_status: dict[str, list[str]] = {}
    for host, status in hosts.items():
        by_status.setdefault(status, []).append(host)
    text = Text()
    for status, names in by_status.items():
        if text:
            text.append("  ")
        text.append(status, style=STATUS_STYLES.get(status, "yellow"))
        text.append(" " + ", ".join(names))
    return text


def make_progress(
    console: Console, verbosity: int = 0, compact: bool = False
) -> LiveProgress | PlainProgress:
    """The live view on a terminal, plain lines anywhere else.

    ``compact`` shows only failures, warnings and (on a terminal) a spinner: for quick
    queries such as ``bluegreen status`` whose answer is a table of its own.
    """
    if console.is_terminal:
        return LiveProgress(console, verbosity, compact)
    return PlainProgress(console, verbosity, compact)
