# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The release's state machine: which step runs next, and the decisions between steps.

A release is a fixed sequence of steps, each a play on its own hosts. Ansible cannot
carry a failure across plays, so every play starts by asking this file whether its step
runs, given the run record the earlier plays left on the controller:

    preflight -> lock -> recover_* (playbooks/recover.yml) -> lb -> database -> plan
      -> snapshot (PostgreSQL) | sqlite_plan -> window_open -> window_snapshot
         -> window_migrate -> window_restore (failed migration) -> window_close
      -> idle_restore (a failure on SQLite) -> deploy
      -> deploy_restore (a failed deploy: the hosts it had deployed) -> frontend (load balancers)
      -> pre_switch_analysis
      -> hold (asked for: the release ends here, held for a person; `bluegreen promote`
         goes on with the steps below under the same release id)
      -> canary (steps asked for) -> switch -> analysis -> auto_rollback (bad signals)
      -> finish

A step that does not run says why, in the words the play prints. The decisions taken
between steps live here too: whether the version is live already (``release_plan``),
whether the post-switch analysis fails the release (``analysis_failure``), and what a
restore after a failed migration adds to the failure message.

Everything here is pure (values in, values out), so the module and the tests share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RELEASE_STEPS = (
    "preflight",
    "lock",
    "recover_find",
    "recover_restore",
    "recover_close",
    "recover_idle",
    "recover_back",
    "recover_judge",
    "recover_rollback",
    "recover_record",
    "lb",
    "database",
    "plan",
    "snapshot",
    "sqlite_plan",
    "window_open",
    "window_snapshot",
    "window_migrate",
    "window_restore",
    "window_close",
    "idle_restore",
    "deploy",
    "deploy_restore",
    "frontend",
    "pre_switch_analysis",
    "hold",
    "canary",
    "switch",
    "analysis",
    "auto_rollback",
    "finish",
)


@dataclass(frozen=True)
class RunRecord:
    """What the plays of one release recorded on the controller so far.

    ``failed_step`` is the step whose rescue ran ('' while none failed). ``sqlite`` (the
    database is SQLite) is known from the plan step on; ``installed`` says that the
    SQLite plan step installed the release on the idle colour, and ``window`` that its
    migrations need a maintenance window. ``maintenance_was_on`` stays true until the
    window step finds maintenance mode off and turns it on.
    """

    failed_step: str = ""
    unchanged: bool = False
    sqlite: bool = False
    installed: bool = False
    window: bool = False
    migration_started: bool = True
    maintenance_was_on: bool = True
    keep_maintenance: bool = False
    switched: bool = False
    pre_switch_analysis: bool = True
    # Canary steps were asked for, and a colour serves users to compare the new one with.
    canary: bool = False
    served_before: bool = False
    # A hold before the switch was asked for, and the hold step held the release.
    hold: bool = False
    held: bool = False
    analysis: bool = True
    # A rollback: with data, what recovering an interrupted release did, whether only
    # that was asked (Ctrl-C), and the data rollback's facts (see module_utils/data_rollback).
    data_rollback: bool = False
    recover_action: str = ""
    recover_only: bool = False
    method: str = "auto"
    target_revision_known: bool = False
    target_after_live: bool = False
    plan_direction: str = "none"
    irreversible: bool = False
    data_mode: str = ""
    refused: bool = False
    quiesced: bool = False
    # Recovering a release a dead controller left open (playbooks/recover.yml): whether
    # one was found, its window to close and snapshot to restore, whether its resumed
    # analysis sends traffic back.
    recovering: bool = False
    recover_close_window: bool = False
    recover_restore: bool = False
    recover_rollback: bool = False
    # A rollback reads what the target colour's hosts run: some version is refused and the
    # service names none in a header for the switch's precheck to read.
    read_targets: bool = False
    # A restore: only listing the snapshots, and whether the restore was confirmed.
    listing: bool = False
    confirmed: bool = False

    @property
    def failed(self) -> bool:
        return self.failed_step != ""

    @property
    def needs_snapshot(self) -> bool:
        """Whether only a restore can take the schema back (or one was asked for)."""
        return self.plan_direction == "downgrade" and (
            self.irreversible or self.method == "restore"
        )


@dataclass(frozen=True)
class StepDecision:
    """Whether a step runs, and why (the reason is printed when it does not)."""

    run: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "reason": self.reason}


@dataclass(frozen=True)
class Rule:
    """A step runs when every condition holds; the first that does not names the reason."""

    conditions: Sequence[tuple[Callable[[RunRecord], bool], str]] = field(default_factory=tuple)

    def decide(self, record: RunRecord) -> StepDecision:
        for holds, reason in self.conditions:
            if not holds(record):
                return StepDecision(False, reason)
        return StepDecision(True, "")


def _no_failure(record: RunRecord) -> bool:
    return not record.failed


def _changes_something(record: RunRecord) -> bool:
    return not record.unchanged


NOT_FAILED = (_no_failure, "an earlier step failed")
CHANGES = (_changes_something, "the version is live already")
ON_SQLITE = (lambda r: r.sqlite, "the database is not SQLite")
NOT_SQLITE = (lambda r: not r.sqlite, "the database is SQLite (snapshot taken inside the window)")
INSTALLED = (lambda r: r.installed, "the release was not installed for a SQLite migration")
IN_WINDOW = (lambda r: r.window, "the migration needs no maintenance window")
NOT_HELD = (lambda r: not r.held, "the release is held before its switch for a person")

RULES: dict[str, Rule] = {
    "preflight": Rule(),
    "lock": Rule((NOT_FAILED,)),
    "lb": Rule((NOT_FAILED,)),
    "database": Rule((NOT_FAILED,)),
    "plan": Rule((NOT_FAILED,)),
    "snapshot": Rule((NOT_FAILED, CHANGES, NOT_SQLITE)),
    "sqlite_plan": Rule((NOT_FAILED, CHANGES, ON_SQLITE)),
    "window_open": Rule((NOT_FAILED, IN_WINDOW)),
    "window_snapshot": Rule((NOT_FAILED, INSTALLED)),
    "window_migrate": Rule((NOT_FAILED, IN_WINDOW)),
    "window_restore": Rule(
        (
            IN_WINDOW,
            (lambda r: r.failed_step == "migrate", "no migration failed inside the window"),
            (
                lambda r: r.migration_started,
                "the migration failed before it touched the database",
            ),
        )
    ),
    "window_close": Rule(
        (
            IN_WINDOW,
            (lambda r: not r.maintenance_was_on, "maintenance mode was on before this release"),
            (
                lambda r: not r.keep_maintenance,
                "the restore failed, so maintenance mode stays on",
            ),
        )
    ),
    "idle_restore": Rule(
        (
            (lambda r: r.failed, "no step failed"),
            (lambda r: r.installed, "the deploy step puts the idle colour back itself"),
        )
    ),
    "deploy": Rule((NOT_FAILED, CHANGES)),
    "deploy_restore": Rule(
        (
            (lambda r: r.failed_step == "deploy", "the deploy did not fail"),
            (
                lambda r: not r.sqlite,
                "a SQLite service runs on one host, which its failed step put back",
            ),
        )
    ),
    "frontend": Rule((NOT_FAILED, CHANGES)),
    "pre_switch_analysis": Rule(
        (NOT_FAILED, CHANGES, (lambda r: r.pre_switch_analysis, "pre-switch analysis is off"))
    ),
    "hold": Rule(
        (NOT_FAILED, CHANGES, (lambda r: r.hold, "no hold before the switch was asked for"))
    ),
    "canary": Rule(
        (
            NOT_FAILED,
            CHANGES,
            NOT_HELD,
            (lambda r: r.canary, "no canary steps were asked for"),
            (lambda r: r.served_before, "a first release: no colour serves users to compare with"),
        )
    ),
    "switch": Rule((NOT_FAILED, CHANGES, NOT_HELD)),
    "analysis": Rule(
        (
            NOT_FAILED,
            (lambda r: r.switched, "traffic did not move"),
            (lambda r: r.analysis, "post-switch analysis is off"),
        )
    ),
    "auto_rollback": Rule(
        ((lambda r: r.failed_step == "analysis", "the post-switch analysis did not fail"),)
    ),
    "finish": Rule(),
}


# The steps of playbooks/traffic.yml, which release.yml and promote.yml import.
TRAFFIC_STEPS = ("canary", "switch", "analysis", "auto_rollback")
KEEPS_PAUSED = (lambda r: False, "promoting a paused release moves no traffic")


def _mode_is(*modes: str) -> tuple[Callable[[RunRecord], bool], str]:
    return (lambda r: r.data_mode in modes, f"the data does not go back by {' or '.join(modes)}")


NOT_DATA = (lambda r: not r.data_rollback, "the data rollback does this step itself")
# rollback.yml imports rollback_data.yml's plays in every rollback: without --with-data
# they must match no host, not run a skipped task on each (0.7 s before traffic moved).
DATA_ONLY = (lambda r: r.data_rollback, "only a rollback with --with-data moves the data")


def _recovers(*actions: str) -> tuple[Callable[[RunRecord], bool], str]:
    return (
        lambda r: r.recover_action in actions,
        f"no interrupted release to {' or '.join(actions)}",
    )


# Imported by release.yml and rollback.yml right after the lock (playbooks/recover.yml).
RECOVER_RULES: dict[str, Rule] = {
    "recover_find": Rule((NOT_FAILED, NOT_DATA)),
    "recover_restore": Rule(
        (NOT_FAILED, (lambda r: r.recover_restore, "no interrupted migration to undo"))
    ),
    "recover_close": Rule(
        (NOT_FAILED, (lambda r: r.recover_close_window, "no maintenance window was left open"))
    ),
    "recover_idle": Rule((NOT_FAILED, _recovers("restore_idle", "rollback"))),
    "recover_back": Rule((NOT_FAILED, _recovers("rollback"))),
    "recover_judge": Rule(
        (NOT_FAILED, _recovers("resume"), (lambda r: r.analysis, "post-switch analysis is off"))
    ),
    "recover_rollback": Rule(
        (
            NOT_FAILED,
            _recovers("resume"),
            (lambda r: r.recover_rollback, "the resumed release's signals are good"),
        )
    ),
    "recover_record": Rule(((lambda r: r.recovering, "no interrupted release was found"),)),
}
# A rollback of traffic only switches unless recovering an interrupted release was the
# rollback; reading what the target colour runs goes with it.
ROLLS_BACK_TRAFFIC = (
    NOT_FAILED,
    NOT_DATA,
    (
        lambda r: r.recover_action in ("", "close"),
        "recovering the interrupted release was the rollback",
    ),
    (lambda r: not r.recover_only, "only the stopped command is undone"),
)
ROLLBACK_RULES: dict[str, Rule] = {
    "lock": Rule((NOT_FAILED, NOT_DATA)),
    "rollback_target": Rule(
        (
            *ROLLS_BACK_TRAFFIC,
            (
                lambda r: r.read_targets,
                "no version is refused, or the service names its version for the precheck",
            ),
        )
    ),
    "rollback_switch": Rule(ROLLS_BACK_TRAFFIC),
    "data_options": Rule((DATA_ONLY,)),
    "data_lock": Rule((NOT_FAILED, DATA_ONLY)),
    "data_hosts": Rule((NOT_FAILED, DATA_ONLY)),
    "data_plan": Rule(
        (
            NOT_FAILED,
            DATA_ONLY,
            (lambda r: r.target_revision_known, "no revision of the previous release is known"),
            (
                lambda r: not r.target_after_live,
                "the colour to go back to was deployed after the live one",
            ),
        )
    ),
    "data_snapshot": Rule(
        (NOT_FAILED, DATA_ONLY, (lambda r: r.needs_snapshot, "a downgrade takes the schema back"))
    ),
    "data_way": Rule((NOT_FAILED, DATA_ONLY)),
    "data_quiesce": Rule(
        (
            NOT_FAILED,
            (lambda r: r.data_mode != "", "no way back was chosen"),
            (lambda r: not r.refused, "the data rollback was refused"),
        )
    ),
    "data_downgrade": Rule((NOT_FAILED, _mode_is("downgrade"))),
    "data_restore": Rule((NOT_FAILED, _mode_is("restore"))),
    "data_healthy": Rule((NOT_FAILED, _mode_is("restore"))),
    # After a failed restore too: the live database was left as it was, users come back.
    "data_switch": Rule(
        (_mode_is("restore"), (lambda r: r.quiesced, "maintenance mode was never turned on"))
    ),
    "finish": Rule(),
}

GOES_ON = (
    (lambda r: not r.listing, "the snapshots are only listed"),
    (lambda r: r.confirmed, "the restore was not confirmed"),
)
RESTORE_RULES: dict[str, Rule] = {
    "restore_read": Rule(),
    "restore_refuse": Rule((NOT_FAILED,)),
    "restore_quiesce": Rule((NOT_FAILED, *GOES_ON)),
    "restore_data": Rule((NOT_FAILED, *GOES_ON)),
    # After a failed restore too: the live database was left as it was.
    "restore_healthy": Rule((*GOES_ON, (lambda r: r.quiesced, "the live colour was never read"))),
    "restore_resume": Rule(
        (
            *GOES_ON,
            (lambda r: not r.maintenance_was_on, "maintenance mode was on before this restore"),
            (
                lambda r: not r.keep_maintenance,
                "the live colour is unhealthy, so maintenance mode stays on",
            ),
        )
    ),
    "finish": Rule(),
}

# The other commands that run their plays through the same steps.
COMMAND_RULES: dict[str, dict[str, Rule]] = {
    "release": {**RULES, **RECOVER_RULES},
    "backup": {"lock": Rule((NOT_FAILED,)), "snapshot": Rule((NOT_FAILED,)), "finish": Rule()},
    "rollback": {**ROLLBACK_RULES, **RECOVER_RULES},
    "restore": RESTORE_RULES,
    "maintenance": {"lock": Rule((NOT_FAILED,)), "maintenance_toggle": Rule((NOT_FAILED,))},
    # A paused release's promote moves no traffic; a held release's promote goes on as
    # that release (bluegreen_release_command release), whose rules its traffic plays ask.
    "promote": {
        "lock": Rule((NOT_FAILED,)),
        **{step: Rule((KEEPS_PAUSED,)) for step in TRAFFIC_STEPS},
        "finish": Rule(),
    },
    "abort": {"lock": Rule((NOT_FAILED,)), "finish": Rule()},
}
COMMAND_STEPS: dict[str, tuple[str, ...]] = {
    "release": RELEASE_STEPS,
    "backup": ("lock", "snapshot", "finish"),
    # rollback_data.yml's steps (with -e rollback_data=true) come first, then the lock,
    # the recovery and the switch of a rollback of traffic only.
    "rollback": (
        *(step for step in ROLLBACK_RULES if step.startswith("data_")),
        "lock",
        *RECOVER_RULES,
        "rollback_target",
        "rollback_switch",
        "finish",
    ),
    "restore": tuple(RESTORE_RULES),
    "maintenance": ("lock", "maintenance_toggle"),
    "promote": ("lock", *TRAFFIC_STEPS, "finish"),
    "abort": ("lock", "finish"),
}


def step_decision(step: str, record: RunRecord, command: str = "release") -> StepDecision:
    """Whether ``step`` of ``command`` runs after what ``record`` says happened."""
    rules = COMMAND_RULES.get(command)
    if rules is None:
        raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMAND_RULES)}")
    if step not in rules:
        steps = ", ".join(COMMAND_STEPS[command])
        raise ValueError(f"unknown step {step!r} of {command}; steps: {steps}")
    return rules[step].decide(record)


def record_from_params(params: Mapping[str, Any]) -> RunRecord:
    """The module's ``record`` option as a RunRecord (None and omitted mean the default)."""
    failure = params.get("failure") or {}
    # A rollback with data: the plan of the live release's migrations down to the target.
    plan = params.get("data_plan") or {}
    defaults = RunRecord()

    def flag(name: str) -> bool:
        value = params.get(name)
        if value is None:
            return bool(getattr(defaults, name))
        # A templated value may arrive as text ("False") rather than a boolean.
        if isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1", "on")
        return bool(value)

    def text(name: str) -> str:
        value = params.get(name)
        return "" if value is None else str(value)

    return RunRecord(
        failed_step=str(failure.get("step", "a step")) if failure else "",
        unchanged=flag("unchanged"),
        sqlite=flag("sqlite"),
        installed=flag("installed"),
        window=flag("window"),
        migration_started=flag("migration_started"),
        maintenance_was_on=flag("maintenance_was_on"),
        keep_maintenance=flag("keep_maintenance"),
        switched=flag("switched"),
        pre_switch_analysis=flag("pre_switch_analysis"),
        canary=flag("canary"),
        served_before=flag("served_before"),
        hold=flag("hold"),
        held=flag("held"),
        analysis=flag("analysis"),
        data_rollback=flag("data_rollback"),
        recover_action=text("recover_action"),
        recover_only=flag("recover_only"),
        method=text("method") or defaults.method,
        target_revision_known=flag("target_revision_known"),
        target_after_live=flag("target_after_live"),
        plan_direction=str(plan.get("direction") or defaults.plan_direction),
        irreversible=any(step.get("irreversible") for step in plan.get("pending") or []),
        data_mode=text("data_mode"),
        refused=flag("refused"),
        quiesced=flag("quiesced"),
        recovering=flag("recovering"),
        recover_close_window=flag("recover_close_window"),
        recover_restore=flag("recover_restore"),
        recover_rollback=flag("recover_rollback"),
        read_targets=flag("read_targets"),
        listing=flag("listing"),
        confirmed=flag("confirmed"),
    )


@dataclass(frozen=True)
class ReleasePlan:
    """What the release does, from what every app host's live colour runs now."""

    unchanged: bool
    live_version: str
    reconfigured: list[str]
    message: str


def release_plan(
    version: str,
    live_colour: str,
    idle_colour: str,
    live_states: Iterable[Mapping[str, Any]],
    reconfigured: Iterable[str] = (),
) -> ReleasePlan:
    """Whether ``version`` is live already, and the plan's journal line.

    ``live_states`` is the live colour's state on each app host (``version``, ``state``).
    The version is live already only when every host's live colour runs it, active, with
    the inventory's configuration; hosts whose configuration changed are redeployed to
    the idle colour and switched. ``live_version`` is '' when nothing served yet.
    """
    states = list(live_states)
    changed = sorted(reconfigured)
    versions = [str(state.get("version") or "") for state in states]
    live_version = next((v for v in versions if v), "")
    unchanged = (
        bool(states)
        and all(v == version for v in versions)
        and all(state.get("state") == "active" for state in states)
        and not changed
    )
    if unchanged:
        message = f"nothing to do: {version} is live on {live_colour} already"
    else:
        message = f"deploy {version} to {idle_colour}, then move traffic from {live_colour}"
        if changed:
            message += f" (its configuration changed on {', '.join(changed)})"
    return ReleasePlan(unchanged, live_version, changed, message)


BAD_VERDICTS = ("critical", "warning", "inconclusive")


def rolls_back(decision: Mapping[str, Any], on_warning: str, on_inconclusive: str) -> bool:
    """Whether an analysis decision sends traffic back (or stops a release before the
    switch): critical signals always do; a warning or an inconclusive verdict only when
    the policy for that verdict is ``rollback``."""
    verdict, action = decision.get("verdict"), decision.get("action")
    if verdict == "warning":
        return on_warning == "rollback"
    if action != "fail":
        return False
    return verdict == "critical" or (verdict == "inconclusive" and on_inconclusive == "rollback")


def pauses(decision: Mapping[str, Any], on_warning: str, on_inconclusive: str) -> bool:
    """Whether the release holds for a person: the colour stays live but nothing measured
    it healthy (the analysis did not pass) and the policy for that is ``pause``. A
    verdict that sends traffic back never pauses."""
    if decision.get("action") == "pass" or rolls_back(decision, on_warning, on_inconclusive):
        return False
    return on_inconclusive == "pause"


def analysis_failure(
    result: Mapping[str, Any], colour: str, on_warning: str, on_inconclusive: str
) -> str:
    """Why the post-switch analysis fails the release ('' when it does not), naming each
    signal that was not healthy."""
    decision = result.get("decision") or {}
    if not rolls_back(decision, on_warning, on_inconclusive):
        return ""
    signals = dict(result.get("signals") or {})
    # The comparison with the old colour judges like a signal of its own.
    comparison = result.get("comparison") or {}
    signals.update(
        (name, comparison[name])
        for name in ("latency_p50_ratio", "latency_p95_ratio", "error_rate_diff")
        if isinstance(comparison.get(name), Mapping)
    )
    bad = [
        f"{name}: {signal.get('reason')}"
        for name, signal in signals.items()
        if isinstance(signal, Mapping) and signal.get("verdict") in BAD_VERDICTS
    ]
    return (
        f"post-switch analysis of {colour} failed ({decision.get('verdict')}): "
        f"{decision.get('reason')}; " + "; ".join(bad)
    )


def restored_failure_message(message: str, snapshot_id: str | None) -> str:
    """A failed migration's message once the window's snapshot is back (or none was)."""
    if snapshot_id:
        return (
            f"{message} -- the database was restored from snapshot {snapshot_id}, taken inside"
            " the maintenance window: no acknowledged write was lost"
        )
    return f"{message} -- there was no database before this release, so nothing was restored"


def restore_failed_message(message: str, snapshot_id: str | None, error: str) -> str:
    """A failed migration's message when restoring the window's snapshot failed too."""
    name = snapshot_id or "ID"
    return (
        f"{message} -- restoring snapshot {snapshot_id or '?'} also failed: {error.strip()}; "
        f"maintenance mode stays on: restore it with `bluegreen restore {name} --yes`, "
        "then `bluegreen maintenance off`"
    )


def rules_table(command: str) -> str:
    """The rules of ``command``'s steps as a Markdown table (docs/architecture.md shows it;
    a unit test keeps the two the same)."""
    rows = ["| step | does not run when (the first that holds) |", "|---|---|"]
    for step in COMMAND_STEPS[command]:
        reasons = [reason for _, reason in COMMAND_RULES[command][step].conditions]
        rows.append(f"| `{step}` | {'; '.join(reasons) or 'always runs'} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class MaintenanceReport:
    """How `bluegreen maintenance on|off` ended, from what each load balancer returned."""

    outcome: str
    message: str
    changed: bool
    retry_after: int | None
    state: str = "on"

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            # Not "changed": that key is the module's own (it never changes anything).
            "changed_any": self.changed,
            "retry_after": self.retry_after,
            "state": self.state,
            # The journal's outcome for the toggle record.
            "journal_outcome": "failed" if self.outcome == "failed" else "ok",
        }


def verify_report(result: Mapping[str, Any] | None, colour: str) -> dict[str, str]:
    """The outcome and message of `bluegreen verify`: the analysis' verdict of the live
    colour. No decision (no analysis ran, or it said nothing) is inconclusive, never ok."""
    decision = (result or {}).get("decision") or {}
    verdict = str(decision.get("verdict") or "inconclusive")
    action = decision.get("action") or "none"
    reason = decision.get("reason") or "the analysis returned no decision"
    return {"outcome": verdict, "message": f"{colour}: {action} ({verdict}): {reason}"}


def maintenance_request(value: Any) -> str | None:
    """The state `bluegreen maintenance` asks for, 'on' or 'off', from the CLI's input;
    YAML reads a bare on/off in a vars file as a boolean, so both spellings count. None
    for anything else."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value or "").strip().lower()
    return text if text in ("on", "off") else None


def maintenance_report(
    on: bool,
    load_balancers: Mapping[str, Mapping[str, Any] | None],
    failure: Mapping[str, Any] | None,
) -> MaintenanceReport:
    """The outcome and message of a maintenance toggle on every load balancer."""
    state = "on" if on else "off"
    results = [r for r in load_balancers.values() if isinstance(r, Mapping)]
    changed = any(r.get("changed") for r in results)
    retry_after = next((r["retry_after"] for r in results if r.get("retry_after")), None)
    names = ", ".join(load_balancers)
    if failure:
        step, msg = failure.get("step", "a step"), failure.get("msg", "")
        message = (
            msg
            if step == "maintenance"
            else f"maintenance mode was not turned {state}: {step} failed on"
            f" {failure.get('host', '?')}: {msg}"
        )
        return MaintenanceReport("failed", message, changed, retry_after, state)
    if not changed:
        message = f"maintenance mode was {state} already on {names}; nothing changed"
    elif on:
        message = (
            f"maintenance mode is on on {names}: users get 503 with Retry-After {retry_after};"
            " health and metrics still reach the live colour"
        )
    else:
        message = f"maintenance mode is off on {names}: users reach the live colour again"
    return MaintenanceReport(f"maintenance_{state}", message, changed, retry_after, state)


def record_from_facts(
    facts: Mapping[str, Any],
    cli: Mapping[str, Any] | None = None,
    analysis: bool = True,
    pre_switch_analysis: bool = True,
) -> dict[str, Any]:
    """The run record's parameters from the controller's facts (``hostvars.localhost``)
    and the command's inputs (``bluegreen_cli``): the one place that names the facts the
    plays record. Reads each fact once; a mapping of lazily templated vars is fine."""
    cli = cli or {}

    def fact(name: str, default: Any = None) -> Any:
        return facts.get(name, default)

    recover = fact("bluegreen_recover_plan") or {}
    maintenance_was_on = fact("bluegreen_data_maintenance_was_on")
    return {
        "failure": fact("bluegreen_release_failure"),
        "unchanged": fact("bluegreen_release_unchanged", False),
        "sqlite": fact("bluegreen_release_sqlite_database", False),
        "installed": fact("bluegreen_release_sqlite", False),
        "window": fact("bluegreen_release_window", False),
        "migration_started": fact("bluegreen_release_migration_started", True),
        "maintenance_was_on": True if maintenance_was_on is None else maintenance_was_on,
        "keep_maintenance": fact("bluegreen_release_keep_maintenance", False),
        "switched": fact("bluegreen_release_switched", False),
        "pre_switch_analysis": pre_switch_analysis,
        "canary": bool(fact("bluegreen_release_canary_steps")),
        "served_before": bool(fact("bluegreen_release_live_version", "")),
        "hold": bool(fact("bluegreen_release_hold", False)),
        "held": bool(fact("bluegreen_release_held", False)),
        "analysis": analysis,
        "data_rollback": cli.get("rollback_data", False),
        "recover_action": recover.get("action") or "",
        "recover_only": cli.get("recover_only", False),
        "method": cli.get("rollback_data_method") or "auto",
        "target_revision_known": fact("bluegreen_release_rollback_target_revision") is not None,
        "target_after_live": fact("bluegreen_release_rollback_target_after_live", False),
        "data_plan": fact("bluegreen_release_rollback_plan") or {},
        "data_mode": fact("bluegreen_release_rollback_mode", ""),
        "refused": fact("bluegreen_release_rollback_refused", False),
        "quiesced": maintenance_was_on is not None,
        "recovering": "bluegreen_recover_plan" in facts,
        "recover_close_window": recover.get("close_window", False),
        "recover_restore": recover.get("restore_snapshot") is not None,
        "recover_rollback": (fact("bluegreen_recover_analysis") or {}).get("rollback", False),
        "read_targets": fact("bluegreen_recover_read_targets", False),
        "listing": fact("bluegreen_release_restore_list", False),
        "confirmed": fact("bluegreen_release_restore_confirmed", False),
    }


def promote_refusal(read: Mapping[str, Any], service: str, now: str) -> str:
    """Why `bluegreen promote` changes nothing ('' when it goes on), from the journal's
    read (its ``paused`` and ``held`` releases); ``now`` as ISO 8601 UTC, like the hold's
    expiry. A hold past its expiry is refused: what was judged may be stale by now."""
    if read.get("paused"):
        return ""
    held = read.get("held")
    if not held:
        return (
            f"nothing is paused or held: no release of {service} waits for a person "
            "(`bluegreen history` shows each release's state); nothing was changed"
        )
    until = str(held.get("held_until") or "")
    if until and now > until:
        return (
            f"release {held.get('release_id')} of {held.get('version')} was held before its "
            f"switch until {until}, and that hold has expired: what was judged then may be "
            "stale. Run `bluegreen abort`, then release it again; nothing was changed"
        )
    return ""


def rollback_target_refusal(
    colour: str,
    runs_by_host: Mapping[str, Mapping[str, str]],
    refused_versions: Mapping[str, str],
) -> str:
    """Why a rollback must not send traffic to ``colour``, from the release directory each
    app host runs per colour (host -> colour -> the colour link's target,
    ``.../releases/<version>``); '' when none of ``colour``'s hosts runs a refused version.

    The switch's own precheck reads the version a service names in a header; a service
    that names none is judged from what its hosts run instead.
    """
    found = {
        host: target.rstrip("/").rsplit("/", 1)[-1]
        for host, colours in runs_by_host.items()
        if (target := str((colours or {}).get(colour) or "")) and "/releases/" in target
    }
    refused = {host: version for host, version in found.items() if version in refused_versions}
    if not refused:
        return ""
    details = "; ".join(
        f"{host} runs {version}, {refused_versions[version]}" for host, version in refused.items()
    )
    return (
        f"refusing to roll back to {colour}: {details}; nothing was written and traffic "
        f"stays where it is. Release a verified version to {colour} instead (bluegreen "
        "history shows them)"
    )
