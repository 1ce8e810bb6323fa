# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The outcome of a release, rollback, backup or restore, and the one line that explains it.

The last play of every command has the facts the earlier plays recorded (which step
failed, whether traffic moved and came back, what the post-switch analysis said, what a
recovery did); this file turns them into one outcome and one message:

    no failure                      -> unchanged, or the command's success outcome
    failed, traffic never moved     -> failed_before_switch (failed when a send-back failed)
    failed after the switch         -> rolled_back when traffic came back, else failed

The message says what happened to users' traffic and must never claim what did not
happen: on a first release (nothing was serving before it) there is no old colour that
"stays warm" or that traffic "stayed on".

Everything here is pure (values in, values out), so the module and the tests share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.release_contract import (
    COMMANDS as CONTRACT_COMMANDS,
)
from ansible.module_utils.release_contract import (
    FAILED,
    FAILED_BEFORE_SWITCH,
    FINISHED_COMMANDS,
    HELD,
    PAUSED,
    UNCHANGED,
    UNVERIFIED,
)

# The commands this file finishes, and the outcomes it can decide (release_contract has
# each one's exit code and label).
COMMANDS = FINISHED_COMMANDS
# A release held before its switch ends its run well too, without moving traffic.
SUCCESS_OUTCOMES = (
    *dict.fromkeys(str(CONTRACT_COMMANDS[name].success_outcome) for name in COMMANDS),
    HELD,
)
OUTCOMES = (*SUCCESS_OUTCOMES, UNVERIFIED, PAUSED, HELD, UNCHANGED, FAILED_BEFORE_SWITCH, FAILED)


@dataclass(frozen=True)
class Failure:
    """The step that failed, as the failure entry point recorded it."""

    step: str = "a step"
    host: str = "?"
    msg: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        return cls(
            step=str(data.get("step", cls.step)),
            host=str(data.get("host", cls.host)),
            msg=str(data.get("msg", cls.msg)),
        )

    def sentence(self) -> str:
        return f"{self.step} failed on {self.host}: {self.msg}"


@dataclass(frozen=True)
class CommandFacts:
    """What the plays of one command recorded on the controller.

    `switched_back` is None when no play recorded it. `live_version` is the version the
    live colour ran before the command: "" when nothing was serving, None when unknown.
    """

    command: str
    failure: Failure | None = None
    switched: bool = False
    switched_back: bool | None = None
    unchanged: bool = False
    success_outcome: str = "released"
    success_message: str = ""
    analysis: Mapping[str, Any] | None = None
    paused: bool = False
    recover_action: str | None = None
    recover_message: str | None = None
    recover_only: bool = False
    live_colour: str = "unknown"
    idle_colour: str = "unknown"
    version: str = ""
    release_id: str = ""
    live_version: str | None = None
    # The migration this command applied ({previous, current}); None when it applied none.
    schema_moved: Mapping[str, Any] | None = None

    @property
    def nothing_served_before(self) -> bool:
        return self.live_version == ""

    @property
    def reports_recovery(self) -> bool:
        """A rollback whose whole job was to finish an interrupted release."""
        return (
            self.command == "rollback"
            and self.recover_message is not None
            and self.recover_action != "close"
            and self.failure is None
        )


def undid_nothing(params: Mapping[str, Any]) -> bool:
    """A rollback asked only to undo a stopped command (Ctrl-C) that had found no
    interrupted release to finish, or only one to close: nothing changed."""
    return (
        params.get("command") == "rollback"
        and bool(params.get("recover_only"))
        and params.get("recover_action") in (None, "close")
    )


def facts_from_params(params: Mapping[str, Any]) -> CommandFacts:
    """The module's parameters as CommandFacts (None and omitted mean the same)."""
    failure = params.get("failure")

    def text(name: str, default: str) -> str:
        value = params.get(name)
        return default if value is None else str(value)

    return CommandFacts(
        command=params["command"],
        failure=None if failure is None else Failure.from_dict(failure),
        switched=bool(params.get("switched")),
        switched_back=params.get("switched_back"),
        unchanged=bool(params.get("unchanged")) or undid_nothing(params),
        success_outcome=text("success_outcome", "released"),
        success_message=text("success_message", ""),
        analysis=params.get("analysis"),
        paused=bool(params.get("paused")),
        recover_action=params.get("recover_action"),
        recover_message=params.get("recover_message"),
        recover_only=bool(params.get("recover_only")),
        live_colour=text("live_colour", "unknown"),
        idle_colour=text("idle_colour", "unknown"),
        version=text("version", ""),
        release_id=text("release_id", ""),
        live_version=params.get("live_version"),
        schema_moved=params.get("schema_moved"),
    )


def failure_outcome(switched: bool, switched_back: bool | None) -> str:
    """The outcome of a failed command, from where its traffic went.

    Traffic that never moved stayed where it was unless sending it back failed (a switch
    cut short); traffic that moved is only rolled back once it came back.
    """
    if not switched:
        return FAILED_BEFORE_SWITCH if switched_back is not False else FAILED
    return "rolled_back" if switched_back else FAILED


def release_outcome(facts: CommandFacts) -> str:
    """The command's outcome, one of OUTCOMES."""
    if facts.failure is not None:
        return failure_outcome(facts.switched, facts.switched_back)
    if facts.unchanged:
        return UNCHANGED
    if facts.success_outcome == "released" and unverified_reason(facts.analysis):
        return PAUSED if facts.paused else UNVERIFIED
    return facts.success_outcome


def unverified_reason(analysis: Mapping[str, Any] | None) -> str:
    """Why a release that went live is not verified ('' when its post-switch analysis
    passed: ok, or warnings within the limits). An inconclusive analysis kept by policy
    measured nothing, and a critical one kept by policy is no evidence of health."""
    if not analysis:
        return "its post-switch analysis is off"
    decision = analysis.get("decision") or {}
    verdict = decision.get("verdict")
    if decision.get("action") == "pass":
        return ""
    reason = f"its post-switch analysis was {verdict or 'not decided'}: " + str(
        decision.get("reason") or "no reason given"
    )
    why = signal_reasons(analysis, verdict)
    return f"{reason} ({why})" if why else reason


def signal_reasons(analysis: Mapping[str, Any], verdict: Any) -> str:
    """The reasons of the last measurement's signals that had `verdict` (inconclusive:
    too little traffic, a dependency down for everyone...), each once."""
    names_by_reason: dict[str, list[str]] = {}
    for name, signal in (analysis.get("signals") or {}).items():
        if isinstance(signal, Mapping) and verdict and signal.get("verdict") == verdict:
            names_by_reason.setdefault(str(signal.get("reason")), []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in names_by_reason.items())


def analysis_note(analysis: Mapping[str, Any] | None) -> str:
    """What the post-switch analysis said, as a suffix of the released message."""
    if analysis is None:
        return ""
    decision = analysis.get("decision") or {}
    verdict, reason = decision.get("verdict"), decision.get("reason")
    if decision.get("action") == "pass":
        return f"; post-switch analysis passed ({verdict}): {reason}"
    return f"; post-switch analysis {verdict}, release kept by policy: {reason}"


def released_message(facts: CommandFacts, outcome: str = "released") -> str:
    """A release that went live: where, what stays warm, what the analysis said."""
    if facts.nothing_served_before:
        kept = "there is no previous release to roll back to"
    else:
        kept = f"{facts.live_colour} stays warm for a rollback"
    live = f"{facts.version} is live on {facts.idle_colour}"
    if outcome == PAUSED:
        return (
            f"{live} but {unverified_reason(facts.analysis)}; the release is PAUSED for a "
            "person, holding the lock: `bluegreen promote` keeps it, `bluegreen rollback` "
            f"sends traffic back; {kept}"
        )
    if outcome == UNVERIFIED:
        return (
            f"{live} but UNVERIFIED: {unverified_reason(facts.analysis)}; a rollback goes back "
            f"to it only with --allow-unverified; {kept}"
        )
    return f"{live}; {kept}" + analysis_note(facts.analysis)


def failed_message(facts: CommandFacts, outcome: str) -> str:
    """A failed command: the step that failed, then where users' traffic is."""
    failure = facts.failure or Failure()
    if outcome == "rolled_back":
        return (
            f"{failure.sentence()} -- traffic is back on {facts.live_colour}, "
            f"{facts.version} is marked bad"
        )
    if outcome == "failed_before_switch":
        if facts.nothing_served_before:
            return (
                f"{failure.sentence()} -- nothing was serving before this {facts.command} "
                "and nothing was switched"
            )
        return f"{failure.sentence()} -- traffic stayed on {facts.live_colour}{schema_note(facts)}"
    return f"{failure.sentence()} -- traffic may be split between colours; run `bluegreen status`"


def schema_note(facts: CommandFacts) -> str:
    """What a release that stopped after its migration left under the live colour."""
    moved = facts.schema_moved
    if not moved:
        return ""
    previous = moved.get("previous") or "an empty schema"
    return (
        f"; its migration stays applied (schema {previous} -> {moved.get('current')}), so "
        f"{facts.live_colour} now runs on the new schema: fix forward with a new release, "
        "or take the schema back with `bluegreen rollback --with-data`"
    )


def succeeded_message(facts: CommandFacts, outcome: str) -> str | None:
    """The message of a command that did not fail; None for an outcome it cannot explain."""
    if facts.reports_recovery:
        return facts.recover_message
    if facts.command == "rollback" and facts.recover_only:
        return "nothing to undo: the stopped command had not taken the lock or changed anything"
    if facts.success_message:
        return facts.success_message
    if facts.command == "backup":
        return f"snapshot {facts.release_id} taken and verified"
    if facts.command == "rollback":
        if facts.unchanged:
            return f"traffic is on {facts.live_colour} already"
        return f"traffic is back on {facts.idle_colour}; {facts.live_colour} stays warm"
    if outcome in ("released", UNVERIFIED, PAUSED):
        return released_message(facts, outcome)
    if outcome == "unchanged":
        return f"{facts.version} is live on {facts.live_colour} already; nothing to do"
    return None


def recovery_note(facts: CommandFacts) -> str:
    """What the command finished of an interrupted one before its own work, as a suffix."""
    if facts.recover_message is None or facts.reports_recovery:
        return ""
    return f" (before this {facts.command}: {facts.recover_message})"


def release_message(facts: CommandFacts, outcome: str) -> str:
    """The one line that explains `outcome` to the operator (and the journal and report)."""
    message = None if facts.failure is not None else succeeded_message(facts, outcome)
    if message is None:
        message = failed_message(facts, outcome)
    return message + recovery_note(facts)
