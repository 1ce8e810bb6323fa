# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Release hooks: a team's commands run in a colour's environment at named points of a
release (``bluegreen_service_hooks``), and what is said about each run.

Pure, so pytest checks it without a host: library/colour_hook.py runs the commands; the
bluegreen_service role's inventory check calls ``hook_problems`` through
filter_plugins/hooks.py. A hook's ``environment`` values are secrets: no message, repr or
record made here shows one; the module redacts each output (release_journal.redact)
before it is cut into an excerpt.

It imports nothing of ours, so the filter can load it outside a module.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AFTER_INSTALL = "after_install"
BEFORE_SWITCH = "before_switch"
AFTER_SWITCH = "after_switch"
AFTER_ROLLBACK = "after_rollback"
POINTS = (AFTER_INSTALL, BEFORE_SWITCH, AFTER_SWITCH, AFTER_ROLLBACK)
# A failed hook at these points stops the release before traffic moves; at the others
# traffic has moved already, so a failure is a warning and changes nothing.
BLOCKING_POINTS = (AFTER_INSTALL, BEFORE_SWITCH)

KEYS = ("name", "at", "command", "once", "timeout", "environment")
DEFAULT_TIMEOUT = 300
EXCERPT_LINES = 20
EXCERPT_LINE_CHARS = 300
# Lines of the excerpt quoted in a failure message (the journal keeps all of them).
MESSAGE_LINES = 5
# The unit's PATH after the release's venv/bin (roles/bluegreen_deploy's unit template).
SERVICE_PATH = "/usr/local/bin:/usr/bin:/bin"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXAMPLE = (
    "[{name: collectstatic, at: after_install, command: django-admin collectstatic --noinput}]"
)
_WHAT_STOPS = {
    AFTER_INSTALL: "the colour was not started and traffic did not move",
    BEFORE_SWITCH: "traffic did not move",
}
_WHAT_STANDS = {
    AFTER_SWITCH: (
        "the switch stands (a hook never undoes it): use the analysis to judge the release"
    ),
    AFTER_ROLLBACK: "the rollback stands (a hook never undoes it)",
}


class HookError(ValueError):
    """The hooks cannot run as given; the message names each hook and the fix."""


@dataclass(frozen=True)
class Hook:
    """One hook as the inventory describes it, checked."""

    name: str
    at: str
    command: str
    once: bool = False
    timeout: int = DEFAULT_TIMEOUT
    # Secrets: kept out of repr so that no traceback or log line shows them.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class HookRun:
    """What became of one hook on one host (or, in check mode, what would run)."""

    name: str
    at: str
    host: str
    colour: str
    version: str
    ran: bool
    exit_code: int | None = None
    timed_out: bool = False
    timeout: int = DEFAULT_TIMEOUT
    duration_s: float = 0.0
    excerpt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ran and not self.timed_out and self.exit_code == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "at": self.at,
            "host": self.host,
            "colour": self.colour,
            "version": self.version,
            "ran": self.ran,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_s": self.duration_s,
            "excerpt": list(self.excerpt),
        }


# --- checking the inventory ------------------------------------------------------------


def _kind(value: Any) -> str:
    """What a value is, for a message that must not show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a dict"
    if isinstance(value, Sequence):
        return "a list"
    return f"a {type(value).__name__}"


def _label(where: str, hook: Mapping[str, Any]) -> str:
    name = hook.get("name")
    return f"{where} ({name})" if isinstance(name, str) and name.strip() else where


def _unknown_key_problems(label: str, hook: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in hook:
        if key in KEYS:
            continue
        close = difflib.get_close_matches(str(key), KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.append(
            f"{label}: unknown key '{key}'; {hint}a hook has name, at, command, once, "
            "timeout and environment"
        )
    return problems


def _at_problem(label: str, at: Any) -> str:
    points = ", ".join(POINTS)
    if at is None:
        return f"{label}: at is missing; say when the hook runs, one of {points}"
    if at not in POINTS:
        close = difflib.get_close_matches(str(at), POINTS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        shown = f"'{at}'" if isinstance(at, str) else _kind(at)
        return f"{label}: at {shown} is not a point of a release{hint}; give one of {points}"
    return ""


def _environment_problems(label: str, environment: Any) -> list[str]:
    if not isinstance(environment, Mapping):
        return [
            f"{label}: environment is {_kind(environment)}; give a dict of variable name to "
            "value (a string, from vault for a secret), e.g. environment: "
            "{DJANGO_SUPERUSER_PASSWORD: the vaulted password}"
        ]
    problems = []
    for key, value in environment.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            problems.append(
                f"{label}: environment name {key!r} is not a variable name; use letters, "
                "digits and '_', not starting with a digit"
            )
        elif not isinstance(value, str):
            problems.append(
                f"{label}: environment {key} is {_kind(value)}; quote it, every value must "
                "be a string"
            )
    return problems


def _hook_problems(where: str, raw: Any, first_index: dict[str, int], name: str) -> list[str]:
    if not isinstance(raw, Mapping):
        return [
            f"{where} is {_kind(raw)}, not a hook; give a dict with name, at and command, "
            f"e.g. {_EXAMPLE[1:-1]}"
        ]
    # Ansible gives every suboption it knows, None when not set.
    hook = {key: value for key, value in raw.items() if value is not None}
    label = _label(where, hook)
    problems = _unknown_key_problems(label, hook)
    hook_name = hook.get("name")
    if hook_name is None:
        problems.append(
            f"{label}: name is missing; give each hook a unique name, e.g. collectstatic"
        )
    elif not isinstance(hook_name, str) or not hook_name.strip():
        problems.append(f"{label}: name must be a non-empty string, unique among the hooks")
    elif hook_name in first_index:
        problems.append(
            f"{label}: the name '{hook_name}' is taken by {name}[{first_index[hook_name]}]; "
            "give each hook a unique name"
        )
    at_problem = _at_problem(label, hook.get("at"))
    if at_problem:
        problems.append(at_problem)
    command = hook.get("command")
    if not isinstance(command, str) or not command.strip():
        state = "missing" if command is None else f"{_kind(command)}, not a command"
        problems.append(
            f"{label}: command is {state}; give the command /bin/sh -c runs, e.g. command: "
            "django-admin collectstatic --noinput"
        )
    once = hook.get("once", False)
    if not isinstance(once, bool):
        problems.append(
            f"{label}: once must be true (run on the colour's first host only) or false "
            "(every host of the colour)"
        )
    timeout = hook.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        shown = repr(timeout) if isinstance(timeout, (int, float, str)) else _kind(timeout)
        problems.append(
            f"{label}: timeout {shown} is not a whole number of seconds above 0; write one "
            f"without quotes, e.g. timeout: 600 (default {DEFAULT_TIMEOUT})"
        )
    problems += _environment_problems(label, hook.get("environment", {}))
    return problems


def hook_problems(hooks: Any, name: str = "hooks") -> list[str]:
    """What is wrong with ``hooks`` (the variable or option ``name``), one message per
    problem naming the hook by its index and name and saying what to write instead;
    empty when every hook can run. No message shows an environment value."""
    if hooks is None:
        return []
    if isinstance(hooks, (str, bytes, Mapping)) or not isinstance(hooks, Sequence):
        return [f"{name} is {_kind(hooks)}; give a list of hooks, e.g. {_EXAMPLE}"]
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(hooks):
        problems += _hook_problems(f"{name}[{index}]", raw, first_index, name)
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            first_index.setdefault(raw["name"], index)
    return problems


def hooks_from(raw_hooks: Any, name: str = "hooks") -> list[Hook]:
    """The hooks, checked; raises HookError naming every problem when any has one."""
    problems = hook_problems(raw_hooks, name)
    if problems:
        raise HookError("; ".join(problems))
    hooks = []
    for raw in raw_hooks or []:
        hook = {key: value for key, value in raw.items() if value is not None}
        hooks.append(
            Hook(
                name=hook["name"],
                at=hook["at"],
                command=hook["command"],
                once=hook.get("once", False),
                timeout=hook.get("timeout", DEFAULT_TIMEOUT),
                environment=dict(hook.get("environment") or {}),
            )
        )
    return hooks


# --- what runs where, and with what ----------------------------------------------------


def blocks(at: str) -> bool:
    """Whether a failed hook at ``at`` stops the release (traffic has not moved yet)."""
    return at in BLOCKING_POINTS


def colour_hosts(colour: str, hosts: Mapping[str, Sequence[str]]) -> list[str]:
    """The hosts that run ``colour``, in the order given (the play's inventory order)."""
    return [host for host, colours in hosts.items() if colour in (colours or [])]


def hooks_for_host(
    hooks: Sequence[Hook], at: str, host: str, colour: str, hosts: Mapping[str, Sequence[str]]
) -> list[Hook]:
    """The hooks of ``at`` that run on ``host``, in their order: none when the host does
    not run ``colour``; a ``once`` hook only on the first host that does. Without
    ``hosts`` the host is the colour's only one."""
    first = True
    if hosts:
        running = colour_hosts(colour, hosts)
        if host not in running:
            return []
        first = running[0] == host
    return [hook for hook in hooks if hook.at == at and (first or not hook.once)]


def hook_environment(
    account: Mapping[str, str],
    env_file: Mapping[str, str],
    hook_env: Mapping[str, str],
    venv_bin: str,
) -> dict[str, str]:
    """The environment a hook runs with, as the colour's unit would have it: the account's
    HOME, USER, LOGNAME and SHELL, the unit's PATH, the colour's env file on top (as
    systemd's EnvironmentFile overrides Environment), then the hook's own variables;
    the release's venv/bin is first on PATH whatever PATH they set."""
    environment = {**account, "PATH": SERVICE_PATH, **env_file, **hook_env}
    path = environment["PATH"]
    if path.split(":", 1)[0] != venv_bin:
        environment["PATH"] = f"{venv_bin}:{path}" if path else venv_bin
    return environment


def secret_values(
    env_file: Mapping[str, str], secret_names: Iterable[str], hooks: Iterable[Hook]
) -> set[str]:
    """What never appears in an excerpt: the env file's values of the service's secrets
    (``secret_names``) and every value of the hooks' environments."""
    found = {env_file[name] for name in secret_names if env_file.get(name)}
    found.update(value for hook in hooks for value in hook.environment.values() if value)
    return found


def excerpt(redacted_output: str, cut_at_start: bool = False) -> list[str]:
    """The last EXCERPT_LINES lines of an output whose secrets are redacted already, each
    cut to EXCERPT_LINE_CHARS characters: redaction comes first, so a cut never leaves
    part of a secret. ``cut_at_start``: the output kept is the end of a longer one, so
    its first line is a fragment, dropped (it could hold the end of a secret)."""
    lines = redacted_output.splitlines()
    if cut_at_start:
        lines = lines[1:]
    return [line[:EXCERPT_LINE_CHARS] for line in lines[-EXCERPT_LINES:]]


# --- what is said about the runs -------------------------------------------------------


def _where(run: HookRun) -> str:
    version = f" {run.version}" if run.version else ""
    return f"on {run.host} ({run.colour}{version})"


def _how_it_ended(run: HookRun) -> str:
    if run.timed_out:
        return f"timed out after {run.timeout} s"
    return f"exit {run.exit_code} after {run.duration_s:.1f} s"


def run_message(run: HookRun) -> str:
    """One line for the journal: the hook, where it ran, how it ended."""
    if not run.ran:
        return f"{run.at} hook {run.name} would run {_where(run)}"
    state = "ok" if run.ok else "failed"
    return f"{run.at} hook {run.name} {_where(run)}: {_how_it_ended(run)} ({state})"


EVIDENCE_KEYS = (
    "name",
    "at",
    "host",
    "colour",
    "version",
    "ok",
    "exit_code",
    "timed_out",
    "duration_s",
    "excerpt",
)


def journal_evidence(run: HookRun) -> dict[str, Any]:
    """The evidence of a run's journal record (its excerpt is redacted already)."""
    found = run.as_dict()
    return {key: found[key] for key in EVIDENCE_KEYS}


def _consequence(at: str) -> str:
    if blocks(at):
        return f"The release stops: {_WHAT_STOPS[at]}."
    return f"Warning only: {_WHAT_STANDS[at]}."


def failure_message(run: HookRun, not_run: Sequence[str] = ()) -> str:
    """Why a hook failed, what that means at its point of the release, and the last
    lines of its output."""
    lines = run.excerpt[-MESSAGE_LINES:]
    skipped = f" The hooks after it did not run: {', '.join(not_run)}." if not_run else ""
    fix = " Fix the hook or the release, then release again." if blocks(run.at) else ""
    output = f"Last lines of its output: {' | '.join(lines)}" if lines else "It printed nothing."
    return (
        f"{run.at} hook {run.name} failed {_where(run)}: {_how_it_ended(run)}. "
        f"{_consequence(run.at)}{skipped}{fix} {output}"
    )


@dataclass(frozen=True)
class HookReport:
    """What the hooks of one point did on one host, for the task's result."""

    ok: bool
    stops_release: bool
    warning: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stops_release": self.stops_release,
            "warning": self.warning,
            "message": self.message,
        }


def _failed(at: str, message: str) -> HookReport:
    if blocks(at):
        return HookReport(ok=False, stops_release=True, warning="", message=message)
    return HookReport(ok=False, stops_release=False, warning=message, message=message)


def report(at: str, host: str, runs: Sequence[HookRun], not_run: Sequence[str] = ()) -> HookReport:
    """The outcome of the hooks of ``at`` on ``host``: a failure stops the release at a
    blocking point and is a warning at the others; every failure is named."""
    failed = [run for run in runs if run.ran and not run.ok]
    if failed:
        return _failed(at, " ".join(failure_message(run, not_run) for run in failed))
    if not runs:
        return HookReport(
            ok=True, stops_release=False, warning="", message=f"no {at} hook runs on {host}"
        )
    if not all(run.ran for run in runs):
        names = ", ".join(run.name for run in runs)
        return HookReport(True, False, "", f"{at} hooks that would run on {host}: {names}")
    done = ", ".join(f"{run.name} ({_how_it_ended(run)})" for run in runs)
    return HookReport(
        ok=True, stops_release=False, warning="", message=f"{at} hooks ran on {host}: {done}"
    )


def problem_report(at: str, host: str, problem: str) -> HookReport:
    """The outcome when the hooks of ``at`` could not run at all (no env file, no user)."""
    return _failed(at, f"the {at} hooks could not run on {host}: {problem}. {_consequence(at)}")
