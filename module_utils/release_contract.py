# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The contract between the ``bluegreen`` CLI and the playbooks, written once.

Every command's last play reports an outcome with ``set_stats`` (``bluegreen_outcome``)
and journals it in the command's closing step; the CLI turns the outcome into an exit
code and a closing line, the report and ``bluegreen history`` read it back from the
journal, and ``bluegreen_notify`` announces it. Each of them reads this table:

    command -> outcomes -> exit code       (COMMANDS, OUTCOME_EXIT_CODES)
    command -> closing journal step        (CLOSING_STEPS; STATES are what history folds)
    outcome -> label, report tone, event   (OUTCOMES)
    event   -> headline, colour, severity  (EVENTS)

Pure data and small functions, no Ansible import: the modules get this file as
``ansible.module_utils.release_contract``, the CLI as
``bluegreen_module_utils.release_contract`` (pyproject.toml maps that package onto
module_utils/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``bluegreen`` command, the same for every command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    FAILED_BEFORE_SWITCH = 3
    ROLLED_BACK = 4
    PAUSED = 5


# What each exit code means, as ``bluegreen --help`` lists it.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "released, already live, rollback done, or status read",
    ExitCode.FAILED: "failed, state unknown (or an internal error)",
    ExitCode.USAGE: "bad usage or input",
    ExitCode.FAILED_BEFORE_SWITCH: "release failed before the switch; traffic unchanged",
    ExitCode.ROLLED_BACK: "release switched, then rolled back to the previous colour",
    ExitCode.PAUSED: "release live but unverified, paused for `bluegreen promote` or rollback",
}

# What the CLI's closing line says before the command's message, by exit code.
CLOSING_LABELS: dict[ExitCode, str] = {
    ExitCode.OK: "",
    ExitCode.FAILED: "failed: ",
    ExitCode.USAGE: "refused, nothing changed: ",
    ExitCode.FAILED_BEFORE_SWITCH: "failed before the switch, traffic unchanged: ",
    ExitCode.ROLLED_BACK: "rolled back to the previous colour: ",
    ExitCode.PAUSED: "paused, waiting for a person: ",
}

# The outcomes bluegreen_release's finish (the release_outcome module) decides itself,
# whatever the command: nothing to do, and the two kinds of failure.
UNCHANGED = "unchanged"
FAILED_BEFORE_SWITCH = "failed_before_switch"
FAILED = "failed"
FAILURE_OUTCOMES = (FAILED_BEFORE_SWITCH, FAILED)
# A release that went live while nothing measured it healthy (its post-switch analysis
# was inconclusive or off): live, but never called verified nor a rollback target.
UNVERIFIED = "unverified"
# The same, held for a person (policy pause): live, lock held, until `bluegreen promote`
# keeps it or `bluegreen rollback` sends traffic back.
PAUSED = "paused"
# Deployed and judged on the idle colour, held before its switch for a person
# (`--pause-before-switch`): traffic never moved, lock held, until `bluegreen promote`
# switches it or `bluegreen abort` ends it.
HELD = "held"
ABORTED = "aborted"

# A run the operator stopped (Ctrl-C): the CLI reports this outcome itself, with the exit
# code of what the recovery of the stopped command did (release_history's RecoveryAction).
STOPPED = "stopped"
STOPPED_EXIT_CODES: dict[str, ExitCode] = {
    "restore_idle": ExitCode.FAILED_BEFORE_SWITCH,
    "close": ExitCode.FAILED_BEFORE_SWITCH,
    "rollback": ExitCode.ROLLED_BACK,
}


@dataclass(frozen=True)
class Command:
    """A command of the CLI that reports an outcome, and how it ends."""

    name: str
    # Every outcome its playbook can report, with the exit code the CLI turns it into.
    outcomes: dict[str, ExitCode] = field(default_factory=dict)
    # The journal step its last play writes, with the outcome in the evidence; None when
    # the command journals no ending (it only reads, or journals its own record).
    closing_step: str | None = None
    # The outcome of a success when bluegreen_release's finish decides the outcome (the
    # release_outcome module); None when the playbook reports its outcome itself.
    success_outcome: str | None = None
    # Whether it moves traffic: only then can it find traffic where it should be already
    # (unchanged), or fail after moving it (rolled_back, failed).
    moves_traffic: bool = False


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "release",
            {
                "released": ExitCode.OK,
                UNVERIFIED: ExitCode.OK,
                PAUSED: ExitCode.PAUSED,
                HELD: ExitCode.PAUSED,
                UNCHANGED: ExitCode.OK,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED_BEFORE_SWITCH,
                "rolled_back": ExitCode.ROLLED_BACK,
                "refused": ExitCode.USAGE,
                FAILED: ExitCode.FAILED,
            },
            closing_step="release",
            success_outcome="released",
            moves_traffic=True,
        ),
        Command(
            "rollback",
            {
                "rolled_back": ExitCode.OK,
                UNCHANGED: ExitCode.OK,
                "refused": ExitCode.USAGE,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED_BEFORE_SWITCH,
                FAILED: ExitCode.FAILED,
            },
            closing_step="rollback",
            success_outcome="rolled_back",
            moves_traffic=True,
        ),
        # Keeps a paused release (its colour stays live) and frees the lock: moves nothing.
        # A release held before its switch is finished instead: the promote runs its
        # switch and post-switch analysis, and ends as that release would have.
        Command(
            "promote",
            {
                "promoted": ExitCode.OK,
                "released": ExitCode.OK,
                UNVERIFIED: ExitCode.OK,
                PAUSED: ExitCode.PAUSED,
                "rolled_back": ExitCode.ROLLED_BACK,
                "refused": ExitCode.USAGE,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED,
                FAILED: ExitCode.FAILED,
            },
            closing_step="promote",
            success_outcome="promoted",
        ),
        # Ends a release held before its switch: traffic never moved; frees the lock.
        Command(
            "abort",
            {
                ABORTED: ExitCode.OK,
                "refused": ExitCode.USAGE,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED,
                FAILED: ExitCode.FAILED,
            },
            closing_step="abort",
            success_outcome=ABORTED,
        ),
        # A backup or a restore moves no traffic: failing "before the switch" is failing.
        Command(
            "backup",
            {
                "backed_up": ExitCode.OK,
                "refused": ExitCode.USAGE,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED,
                FAILED: ExitCode.FAILED,
            },
            closing_step="backup",
            success_outcome="backed_up",
        ),
        Command(
            "restore",
            {
                "restored": ExitCode.OK,
                "listed": ExitCode.OK,
                "refused": ExitCode.USAGE,
                FAILED_BEFORE_SWITCH: ExitCode.FAILED,
                FAILED: ExitCode.FAILED,
            },
            closing_step="restore",
            success_outcome="restored",
        ),
        Command(
            "maintenance",
            {
                "maintenance_on": ExitCode.OK,
                "maintenance_off": ExitCode.OK,
                "refused": ExitCode.USAGE,
                FAILED: ExitCode.FAILED,
            },
            closing_step="maintenance",
        ),
        Command(
            "lock",
            {
                "free": ExitCode.OK,
                "locked": ExitCode.OK,
                "lock_broken": ExitCode.OK,
                FAILED: ExitCode.FAILED,
            },
        ),
    )
}

# The same table as plain dicts: command -> outcome -> exit code.
OUTCOME_EXIT_CODES: dict[str, dict[str, ExitCode]] = {
    name: dict(command.outcomes) for name, command in COMMANDS.items()
}
# The journal steps that close a command: only the last play's record of one of them
# carries the outcome (a release's automatic rollback or its restore inside a maintenance
# window journal the same step names, without one).
CLOSING_STEPS: tuple[str, ...] = tuple(
    command.closing_step for command in COMMANDS.values() if command.closing_step
)
# The commands whose outcome bluegreen_release's finish decides (the release_outcome module).
FINISHED_COMMANDS: tuple[str, ...] = tuple(
    name for name, command in COMMANDS.items() if command.success_outcome
)

# The state of each release in ``bluegreen history``, folded from the journal by
# release_history (its docstring draws the state machine).
STATES: tuple[str, ...] = (
    "started",
    "interrupted",
    "prepared",
    "active",
    "verified",
    "unverified",
    "paused",
    "held",
    "aborted",
    "promoted",
    "rolled-back",
    "bad",
    "failed",
    "unchanged",
    "done",
)


@dataclass(frozen=True)
class Event:
    """A notification event: how bluegreen_notify announces it."""

    name: str
    # The word after which the announcement names the command ("FAILED: release of ...").
    headline: str
    # The webhook attachment's colour (Slack's names or a hex colour).
    colour: str
    # For receivers that route by severity (info, warning, critical).
    severity: str


EVENTS: dict[str, Event] = {
    event.name: event
    for event in (
        Event("start", "started", "#439FE0", "info"),
        Event("success", "succeeded", "good", "info"),
        Event("failure", "FAILED", "danger", "critical"),
        Event("rollback", "ROLLED BACK", "warning", "warning"),
        Event("unverified", "went live UNVERIFIED", "warning", "warning"),
        Event("paused", "PAUSED, waiting for a person", "warning", "warning"),
        Event("held", "HELD before its switch, waiting for a person", "warning", "warning"),
    )
}
# An outcome nobody knows is announced as a failure: it may hide one.
UNKNOWN_OUTCOME_EVENT = "failure"


@dataclass(frozen=True)
class Outcome:
    """An outcome, as people read it: in the report, in the docs, in a notification."""

    name: str
    # One line saying what the outcome means for users' traffic.
    label: str
    # The notification event that announces it (a key of EVENTS).
    event: str
    # How the report colours it: good, bad or neutral.
    tone: str


OUTCOMES: dict[str, Outcome] = {
    outcome.name: outcome
    for outcome in (
        Outcome("released", "released: the new version serves all traffic", "success", "good"),
        Outcome(
            UNVERIFIED,
            "unverified: the new version serves all traffic, but nothing measured that it is "
            "healthy (its post-switch analysis was inconclusive or off)",
            "unverified",
            "neutral",
        ),
        Outcome(
            PAUSED,
            "paused: the new version serves all traffic but nothing measured it healthy; "
            "the release holds the lock until `bluegreen promote` or `bluegreen rollback`",
            "paused",
            "neutral",
        ),
        Outcome(
            HELD,
            "held: the new version is deployed and judged on the idle colour, traffic has not "
            "moved; the release holds the lock until `bluegreen promote` switches it or "
            "`bluegreen abort` ends it",
            "held",
            "neutral",
        ),
        Outcome(
            ABORTED,
            "aborted: a person ended the release held before its switch; traffic never moved",
            "success",
            "neutral",
        ),
        Outcome(
            "promoted",
            "promoted: a person kept the paused release; the lock is free",
            "success",
            "good",
        ),
        Outcome(
            UNCHANGED,
            "unchanged: the version was live already, nothing was deployed",
            "success",
            "neutral",
        ),
        Outcome(
            FAILED_BEFORE_SWITCH,
            "failed before the switch: traffic never left the live colour",
            "failure",
            "bad",
        ),
        Outcome(
            "rolled_back",
            "rolled back: traffic is back on the previous colour, the release is bad",
            "rollback",
            "bad",
        ),
        Outcome(FAILED, "failed: the state is unknown, check `bluegreen status`", "failure", "bad"),
        Outcome(
            "refused",
            "refused: the input was bad, nothing was changed",
            "failure",
            "neutral",
        ),
        Outcome("backed_up", "backed up: a snapshot was taken and verified", "success", "good"),
        Outcome("restored", "restored: the snapshot's data is back", "success", "good"),
        Outcome("listed", "listed: the snapshots were read", "success", "neutral"),
        Outcome(
            "maintenance_on", "maintenance on: users get the maintenance page", "success", "good"
        ),
        Outcome(
            "maintenance_off", "maintenance off: users reach the service again", "success", "good"
        ),
        Outcome("free", "free: nobody holds the release lock", "success", "neutral"),
        Outcome("locked", "locked: a command holds the release lock", "success", "neutral"),
        Outcome("lock_broken", "lock broken: the named lock was removed", "success", "good"),
    )
}


def exit_code(command: str, outcome: str | None) -> ExitCode | None:
    """The exit code of ``command`` ending with ``outcome``; None when the contract has
    no such outcome for it."""
    known = COMMANDS.get(command)
    if known is None or outcome is None:
        return None
    return known.outcomes.get(outcome)


def outcome_label(outcome: str | None) -> str | None:
    """The one-line meaning of ``outcome``; None for an outcome the contract lacks."""
    known = OUTCOMES.get(str(outcome))
    return None if known is None else known.label


def outcomes_of_tone(tone: str) -> tuple[str, ...]:
    """The outcomes the report colours ``tone`` (good, bad, neutral)."""
    return tuple(name for name, outcome in OUTCOMES.items() if outcome.tone == tone)


def notification(outcome: str | None = None, event: str | None = None) -> dict[str, str]:
    """How bluegreen_notify announces ``event``, or else ``outcome``: the event, its
    headline, colour and severity. An unknown outcome is announced as a failure."""
    if not event:
        known = OUTCOMES.get(str(outcome))
        event = known.event if known is not None else UNKNOWN_OUTCOME_EVENT
    chosen = EVENTS.get(event)
    if chosen is None:
        raise ValueError(f"unknown notification event {event!r}; one of {', '.join(EVENTS)}")
    return {
        "event": chosen.name,
        "headline": chosen.headline,
        "colour": chosen.colour,
        "severity": chosen.severity,
    }
