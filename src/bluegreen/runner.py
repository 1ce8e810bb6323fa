"""Running a playbook through ansible-runner and reading back what it reported.

Each playbook ends with ``ansible.builtin.set_stats`` (``per_host: false``), so its data
lands in ansible's custom stats under ``_run``; ansible-runner's ``awx_display``
callback copies exactly that into the ``playbook_on_stats`` event as
``event_data['artifact_data']``. The outcome of a release is read from there, never
parsed from console output.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from bluegreen.errors import BluegreenError, InputError

log = logging.getLogger(__name__)

RUNS_KEPT = 20
RUN_IDENT = "run"
OUTCOME_KEY = "bluegreen_outcome"
MESSAGE_KEY = "bluegreen_message"

# How ansible-runner names the per-host counters in playbook_on_stats, by what we call them.
_STAT_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failures",
    "unreachable": "dark",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
_RUN_DIR = re.compile(r"^\d{8}T\d{12}Z-[\w.-]+$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ERROR_START = ("[ERROR]", "ERROR!")

EventHandler = Callable[[dict[str, Any]], None]


class Failure(NamedTuple):
    host: str
    task: str
    msg: str


@dataclass
class PlaybookResult:
    rc: int
    status: str
    outcome: str | None
    message: str | None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    custom_stats: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problem: str | None = None
    artifact_dir: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful"


def plain_text(text: str) -> str:
    """``text`` without terminal colour codes and carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


def result_message(res: Mapping[str, Any]) -> str:
    """What a task result says went wrong: its msg, then its stderr (or stdout).

    A ``no_log`` result has already been replaced by ansible with ``censored``; that
    text is all we ever show of it.
    """
    if "censored" in res:
        return str(res["censored"])
    lines: list[str] = []
    msg = res.get("msg")
    head = (msg if isinstance(msg, str) else json.dumps(msg)) if msg else ""
    rc = res.get("rc")
    if rc not in (None, 0):
        head = f"{head} (rc={rc})" if head else f"exit code {rc}"
    if head:
        lines.append(head)
    output = res.get("stderr") or res.get("module_stderr") or res.get("stdout") or ""
    if output:
        lines.append(output.rstrip() if isinstance(output, str) else json.dumps(output))
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
            label = item.get("_ansible_item_label", item.get("item"))
            lines.append(f"item {label}: {result_message(item)}")
    return "\n".join(lines)


def event_failure_message(event: Mapping[str, Any]) -> str:
    """The message of a failed or unreachable event, from its result or, if ansible-runner
    dropped an oversized result, from its console text."""
    res = event.get("event_data", {}).get("res") or {}
    return result_message(res) or plain_text(event.get("stdout") or "").strip()


def host_stats(event_data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per-host counters (ok, changed, failed, unreachable, ...) from playbook_on_stats."""
    hosts: set[str] = set(event_data.get("processed") or {})
    for key in _STAT_KEYS.values():
        hosts.update(event_data.get(key) or {})
    return {
        host: {
            name: int((event_data.get(key) or {}).get(host, 0)) for name, key in _STAT_KEYS.items()
        }
        for host in sorted(hosts)
    }


def resolve_inventory(project: Path, inventory: str | None) -> str | None:
    """An absolute inventory path from a name (``lab`` -> ``<project>/inventories/lab``)
    or a path; ``None`` keeps the default from ansible.cfg.

    ansible-runner would treat a string that is not an existing path as inline inventory
    text, so a typo would silently become a host name; hence the check here.
    """
    if inventory is None:
        return None
    named = project / "inventories" / inventory
    if "/" not in inventory and named.exists():
        return str(named.resolve())
    path = Path(inventory).expanduser()
    if path.exists():
        return str(path.resolve())
    known = sorted(p.name for p in (project / "inventories").glob("*") if p.is_dir())
    hint = f"; known inventories: {', '.join(known)}" if known else ""
    raise InputError(
        f"inventory {inventory!r} is neither a path nor a name under {named.parent}{hint}"
    )


def inventory_name(project: Path, inventory: str | None) -> str:
    """The inventory's folder name (what state/journal/ and state/reports/ are keyed by);
    without one, the inventory ansible.cfg names."""
    if inventory is not None and "/" not in inventory:
        return inventory
    resolved = resolve_inventory(project, inventory)
    if resolved is None:
        config = configparser.ConfigParser(interpolation=None)
        config.read(project / "ansible.cfg")
        resolved = config.get("defaults", "inventory", fallback="inventories/lab")
    path = Path(resolved)
    return (path.parent if path.is_file() else path).name


def playbook_path(project: Path, playbook: str) -> Path:
    """The playbook file, given relative to the project (``playbooks/release.yml``)."""
    path = project / playbook
    if not path.is_file():
        raise InputError(f"playbook {path} does not exist; is {project} a bluegreen project?")
    return path


def new_run_dir(project: Path, label: str, keep: int = RUNS_KEPT) -> Path:
    """A fresh ``<project>/state/runner/<timestamp>-<label>``, keeping ``keep`` runs in all."""
    runs = project / "state" / "runner"
    runs.mkdir(parents=True, exist_ok=True)
    prune_runs(runs, keep - 1)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = runs / f"{stamp}-{label}"
    path.mkdir(mode=0o700)
    return path


# A run whose output changed this recently may still be running (another command, from
# another terminal): its directory is never pruned.
RUN_ACTIVE_S = 3600


def _last_change(run: Path) -> float:
    stdout = run / "artifacts" / RUN_IDENT / "stdout"
    return max(run.stat().st_mtime, stdout.stat().st_mtime if stdout.exists() else 0.0)


def prune_runs(runs: Path, keep: int, now: float | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` run directories, sparing any that may still be
    running (finished without a status less than an hour ago); returns the deleted."""
    now = time.time() if now is None else now
    dirs = sorted(p for p in runs.iterdir() if p.is_dir() and _RUN_DIR.match(p.name))
    old = [
        path
        for path in dirs[: max(len(dirs) - keep, 0)]
        if (path / "artifacts" / RUN_IDENT / "status").exists()
        or now - _last_change(path) > RUN_ACTIVE_S
    ]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


class EventCollector:
    """Records what the run reports (failures, errors, stats) and forwards each event.

    A broken display must never abort a release half-way, so an exception from the
    forwarded handler is logged once and the display is dropped; the run goes on.
    """

    def __init__(self, forward: EventHandler | None = None) -> None:
        self.forward = forward
        self.failures: list[Failure] = []
        self.errors: list[str] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.custom_stats: dict[str, Any] = {}
        self._error_lines: list[str] | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        self.record(event)
        if self.forward is not None:
            try:
                self.forward(event)
            except Exception:
                log.exception("progress display failed; the playbook keeps running")
                self.forward = None
        return True

    def record(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        data = event.get("event_data") or {}
        if name == "verbose":
            self._record_text(plain_text(event.get("stdout") or ""))
            return
        self._close_error()
        failed = name in ("runner_on_failed", "runner_on_async_failed")
        if (failed and not data.get("ignore_errors")) or name == "runner_on_unreachable":
            self.failures.append(_failure(event))
        elif name == "playbook_on_stats":
            self.stats = host_stats(data)
            self.custom_stats = dict(data.get("artifact_data") or {})

    def finish(self) -> None:
        self._close_error()

    def _record_text(self, text: str) -> None:
        # ansible prints an error as several lines (message, origin, source excerpt),
        # each its own event; keep them together as one error.
        for line in text.splitlines():
            if line.startswith(_ERROR_START):
                self._close_error()
                self._error_lines = [line]
            elif self._error_lines is not None and line.strip():
                self._error_lines.append(line)

    def _close_error(self) -> None:
        if self._error_lines:
            self.errors.append("\n".join(self._error_lines))
        self._error_lines = None


def _failure(event: Mapping[str, Any]) -> Failure:
    data = event.get("event_data") or {}
    return Failure(
        host=str(data.get("host", "?")),
        task=str(data.get("task") or data.get("task_action") or "?"),
        msg=event_failure_message(event),
    )


def problem_summary(
    status: str, rc: int, failures: list[Failure], errors: list[str], artifact_dir: Path | None
) -> str:
    """One message saying why a run did not succeed, for when the playbook could not say."""
    log_hint = f"; full output in {artifact_dir / 'stdout'}" if artifact_dir else ""
    if status == "canceled":
        return "the run was cancelled before the playbook finished; check `bluegreen status`"
    if status == "timeout":
        return f"the run timed out{log_hint}"
    if failures:
        last = failures[-1]
        return f"task '{last.task}' failed on {last.host}: {last.msg}"
    if errors:
        return errors[-1]
    return f"ansible-playbook exited with code {rc}{log_hint}"


DEFAULT_STRATEGY = "bluegreen_mitogen_linear"
STRATEGY_VARIABLE = "BLUEGREEN_ANSIBLE_STRATEGY"
# bluegreen's own strategy plugins (src/bluegreen/strategy_plugins): Mitogen's linear
# strategy with its module-dependency scan's compiles kept for the command's run.
OWN_STRATEGIES = Path(__file__).parent / "strategy_plugins"


def strategy_envvars(choice: str | None) -> dict[str, str]:
    """The Ansible strategy a command runs with: Mitogen for Ansible's linear strategy
    (``bluegreen_mitogen_linear``, see its plugin) unless ``choice``
    (``BLUEGREEN_ANSIBLE_STRATEGY``) names another, e.g. ``linear`` or Mitogen's own
    ``mitogen_linear``.

    Mitogen keeps one Python interpreter per host for the whole run instead of starting
    one per task over SSH; a release runs ~50 remote tasks, and that start-up was half of
    its time (docs/benchmarks.md, "Ansible's overhead"). Its plugin directory is found
    from the installed package, so no path is written into ansible.cfg."""
    strategy = choice or DEFAULT_STRATEGY
    if "mitogen_" not in strategy:
        return {"ANSIBLE_STRATEGY": strategy}
    try:
        import ansible_mitogen
    except ImportError as exc:
        raise InputError(
            f"{STRATEGY_VARIABLE}={strategy} needs Mitogen for Ansible, which is not installed: "
            f"install it (pip install mitogen) or set {STRATEGY_VARIABLE}=linear"
        ) from exc
    mitogens = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    plugins = os.pathsep.join([str(OWN_STRATEGIES), str(mitogens)])
    return {"ANSIBLE_STRATEGY_PLUGINS": plugins, "ANSIBLE_STRATEGY": strategy}


def ssh_socket_folder() -> Path:
    """Where ansible.cfg's ``ControlPath`` keeps the SSH master sockets (``~/.ansible``),
    made when missing. ssh reads ``~`` from the user database, not ``$HOME`` (which is
    where Ansible makes its own ``~/.ansible/tmp``), and refuses to connect at all when
    the folder is missing: every host would look unreachable."""
    import pwd

    folder = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ansible"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BluegreenError(
            f"cannot make {folder}, where SSH keeps its connections to the hosts: {exc}"
        ) from exc
    return folder


def _envvars(project: Path) -> dict[str, str]:
    ssh_socket_folder()
    env = {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        # The controller's copy of the journal goes to <project>/state/journal/.
        "BLUEGREEN_STATE_DIR": str(project / "state"),
        **strategy_envvars(os.environ.get(STRATEGY_VARIABLE)),
    }
    # Run the ansible-playbook installed next to this interpreter, even when the
    # virtualenv is not activated (e.g. `.venv/bin/bluegreen release ...`).
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "ansible-playbook").exists():
        env["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    return env


def namespaced_extravars(extravars: Mapping[str, Any]) -> dict[str, Any]:
    """The command's inputs under one variable, ``bluegreen_cli``, so that none of them
    overrides a role variable at extra-vars precedence by sharing its name; a role
    variable the command sets on purpose (``bluegreen_<role>_...``) stays at the top."""
    inputs = {key: value for key, value in extravars.items() if not key.startswith("bluegreen_")}
    settings = {key: value for key, value in extravars.items() if key.startswith("bluegreen_")}
    return {**settings, "bluegreen_cli": inputs} if inputs else settings


def _write_extravars(private_data_dir: Path, extravars: Mapping[str, Any]) -> Path:
    """Write extra vars where ansible-runner passes them as ``-e @file``: readable by the
    owner only, and never on the command line where ``ps`` would show them."""
    env_dir = private_data_dir / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    path = env_dir / "extravars"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(namespaced_extravars(extravars), handle)
    return path


def run_playbook(
    project: Path,
    playbook: str,
    extravars: dict[str, Any] | None = None,
    inventory: str | None = None,
    limit: str | None = None,
    on_event: EventHandler | None = None,
    verbosity: int = 0,
    private_data_dir: Path | None = None,
    cancel_callback: Callable[[], bool] | None = None,
) -> PlaybookResult:
    """Run ``playbook`` (relative to ``project``) and return what it reported.

    Events stream to ``on_event`` as they happen. Run records go to
    ``private_data_dir`` (default: a new ``<project>/state/runner/<timestamp>-<name>``,
    the last 20 kept). The extra-vars file is deleted when the run ends.
    ``cancel_callback`` is asked regularly; when it returns True the run is stopped
    (ansible-playbook and its workers are killed) and its status is ``canceled``.
    """
    import ansible_runner

    project = project.resolve()
    book = playbook_path(project, playbook)
    inventory_path = resolve_inventory(project, inventory)
    if private_data_dir is None:
        private_data_dir = new_run_dir(project, book.stem)
    else:
        private_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    extravars_file = _write_extravars(private_data_dir, extravars) if extravars else None
    collector = EventCollector(on_event)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            project_dir=str(project),
            playbook=str(book.relative_to(project)),
            inventory=inventory_path,
            limit=limit,
            verbosity=verbosity or None,
            envvars=_envvars(project),
            ident=RUN_IDENT,
            quiet=True,
            suppress_env_files=True,
            event_handler=collector,
            cancel_callback=cancel_callback,
        )
    except Exception as exc:
        raise BluegreenError(f"could not run {book.name} with ansible-runner: {exc}") from exc
    finally:
        if extravars_file is not None:
            extravars_file.unlink(missing_ok=True)
    collector.finish()

    artifact_dir = Path(runner.config.artifact_dir)
    rc = runner.rc if runner.rc is not None else 1
    status = str(runner.status)
    outcome = collector.custom_stats.get(OUTCOME_KEY)
    message = collector.custom_stats.get(MESSAGE_KEY)
    succeeded = rc == 0 and status == "successful"
    problem = (
        None
        if succeeded
        else problem_summary(status, rc, collector.failures, collector.errors, artifact_dir)
    )
    return PlaybookResult(
        rc=rc,
        status=status,
        outcome=None if outcome is None else str(outcome),
        message=problem if message is None else str(message),
        stats=collector.stats,
        custom_stats=collector.custom_stats,
        failures=collector.failures,
        errors=collector.errors,
        problem=problem,
        artifact_dir=artifact_dir,
    )
