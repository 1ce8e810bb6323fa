# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""What the journal says about each release: its state, and what to do after a crash.

The journal (``release_journal``) is a flat list of step records. This file folds them
into one summary per release, with the release state machine of DESIGN.md:

    prepared -> active -> verified -> rolled-back
       |           |    +-> unverified -> rolled-back   (live, but its post-switch
       |           |    |                               analysis was inconclusive or off)
       |           |    +-> paused -> promoted | rolled-back   (the same, held for a
       |           |                                    person: promote or rollback)
       +-> held -> (promote) active -> ... | aborted   (held before its switch for a
       |                                                person: promote or abort)
       +-----------+-> bad           (a failed deploy, migration or analysis)

plus ``failed`` for a release that stopped before anything of it ran (preflight, lock,
policy), ``unchanged`` for a release of the version that was live already, ``done``
for other commands (rollback, backup, maintenance) that succeeded, and
``interrupted`` for one whose controller died: it has no closing record yet. The next
command finds that release (``unfinished_release``) and decides with
``recovery_action`` whether to resume or roll it back.

Everything here is pure (records in, values out) and imports nothing from Ansible, so
the CLI uses the same rules as the playbooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The closing steps are release_contract's (its STATES are the states folded here): the
# CLI and the report read the same table.
from ansible.module_utils.release_contract import (
    ABORTED,
    CLOSING_STEPS,
    FAILURE_OUTCOMES,
    HELD,
    UNVERIFIED,
)

# States of a release whose version went live and stayed live when it ended.
LIVE_STATES = ("verified", "unverified", "paused", "promoted")
# Steps after which a failure means the version itself misbehaved.
VERSION_STEPS = ("deploy", "migrate", "health", "pre_switch_analysis", "analysis", "switch")


@dataclass
class ReleaseSummary:
    """One release (or rollback, backup, ...) as the journal tells it."""

    release_id: str
    command: str
    state: str
    version: str | None = None
    colour: str | None = None
    previous_colour: str | None = None
    previous_version: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None
    message: str | None = None
    lock_id: str | None = None
    steps: list[str] = field(default_factory=list)
    failed_step: str | None = None
    # The check of the failed step that stopped it (colour_start's health, smoke, version;
    # release_install's artifact), when the failure record names one.
    failed_check: str | None = None
    recovered_by: str | None = None
    # For a promote: the paused release it kept; for an abort: the held release it ended.
    promoted: str | None = None
    aborted: str | None = None
    # For a release held before its switch: when its hold expires, its canary steps and
    # the version live when it was held (what its promote goes on with).
    held_until: str | None = None
    canary_steps: list[int] = field(default_factory=list)
    live_version: str | None = None
    # Passed its post-switch analysis (or was kept by policy) at some point.
    verified: bool = False
    # What each host of the target colour ran before: where a recovery puts it back.
    idle_versions: dict[str, str] = field(default_factory=dict)
    # A SQLite maintenance window this release opened and has not closed: the snapshot
    # taken inside it and whether the migration finished (see window_to_close).
    window: MaintenanceWindow | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MaintenanceWindow:
    """A maintenance window a release opened for its SQLite migration."""

    open: bool = True
    snapshot_id: str | None = None
    migrated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecoveryAction:
    """What the next command does about an interrupted release, and why."""

    # resume: judge the new colour now and keep it when healthy.
    # rollback: send traffic (back) to the previous colour.
    # restore_idle: traffic never moved; put the idle colour back on its old release.
    # close: nothing left to do but record the end.
    action: str
    traffic_colour: str | None
    reason: str
    # A maintenance window left open: users get 503 until it is closed. With
    # ``restore_snapshot`` the migration may have run halfway, so the snapshot taken
    # inside the window (no write was acknowledged since) goes back first.
    close_window: bool = False
    restore_snapshot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grouped(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Records per release id, in journal order (dicts keep insertion order)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        release_id = record.get("release_id")
        if isinstance(release_id, str) and release_id:
            grouped.setdefault(release_id, []).append(record)
    return grouped


def _evidence(record: Mapping[str, Any]) -> Mapping[str, Any]:
    evidence = record.get("evidence")
    return evidence if isinstance(evidence, Mapping) else {}


def _ok_steps(records: Sequence[Mapping[str, Any]]) -> set[str]:
    return {str(r.get("step")) for r in records if r.get("outcome") == "ok"}


def _summarize(release_id: str, records: Sequence[Mapping[str, Any]]) -> ReleaseSummary:
    summary = ReleaseSummary(release_id=release_id, command="release", state="started")
    summary.started_at = records[0].get("started_at") or records[0].get("ts")
    for record in records:
        step = str(record.get("step"))
        evidence = _evidence(record)
        summary.steps.append(step)
        if step in ("lock", "plan") and record.get("outcome") == "ok":
            summary.command = str(evidence.get("command") or summary.command)
            summary.idle_versions = dict(evidence.get("idle_versions") or summary.idle_versions)
            summary.lock_id = evidence.get("lock_id") or summary.lock_id
            summary.version = evidence.get("version") or summary.version
            summary.colour = evidence.get("colour") or summary.colour
            summary.previous_colour = evidence.get("previous_colour") or summary.previous_colour
            summary.previous_version = evidence.get("previous_version") or summary.previous_version
        if record.get("outcome") == "failed" and summary.failed_step is None:
            summary.failed_step = step
            summary.failed_check = evidence.get("check") or None
        _follow_window(summary, step, record, evidence)
        # A release held before its switch goes on under its own id when promoted: what
        # it journals after the hold reopens it (an interrupted promote is recovered).
        if summary.outcome == HELD and step not in CLOSING_STEPS:
            summary.outcome = summary.finished_at = None
        # Only the last play's record carries the outcome; a release's automatic rollback
        # or a restore inside it journal the same step names without one.
        if step in CLOSING_STEPS and "outcome" in evidence:
            summary.command = step
            summary.finished_at = record.get("finished_at") or record.get("ts")
            summary.outcome = evidence.get("outcome")
            summary.message = record.get("message")
            summary.version = evidence.get("version") or summary.version
            summary.colour = evidence.get("colour") or summary.colour
            summary.previous_colour = evidence.get("previous_colour") or summary.previous_colour
            summary.promoted = evidence.get("promoted") or summary.promoted
            summary.aborted = evidence.get("aborted") or summary.aborted
            summary.held_until = evidence.get("held_until") or summary.held_until
            summary.canary_steps = list(evidence.get("canary_steps") or summary.canary_steps)
            summary.live_version = evidence.get("live_version", summary.live_version)
    summary.state = _state(summary, records)
    summary.verified = summary.state == "verified" and summary.command == "release"
    return summary


def _follow_window(
    summary: ReleaseSummary, step: str, record: Mapping[str, Any], evidence: Mapping[str, Any]
) -> None:
    """Track a maintenance window the release opened (and did not find open)."""
    if record.get("outcome") != "ok":
        return
    window = summary.window
    if step == "window" and evidence.get("window") == "open" and not evidence.get("was_on"):
        summary.window = MaintenanceWindow()
    elif window is None or not window.open:
        return
    elif step == "window" and evidence.get("window") == "closed":
        window.open = False
    elif step == "snapshot" and evidence.get("in_maintenance_window"):
        window.snapshot_id = evidence.get("snapshot_id") or window.snapshot_id
    elif step == "migrate":
        window.migrated = True
    elif step == "restore":
        # The release restored the window's snapshot itself after a failed migration.
        window.migrated = True


def _state(summary: ReleaseSummary, records: Sequence[Mapping[str, Any]]) -> str:
    ok = _ok_steps(records)
    if summary.outcome is None:
        if "switch" in ok:
            return "active"
        if "deploy" in ok:
            return "prepared"
        return "started"
    if summary.command != "release":
        return "done" if summary.outcome not in FAILURE_OUTCOMES else "failed"
    if summary.outcome == "released":
        return "verified"
    if summary.outcome == UNVERIFIED:
        return "unverified"
    if summary.outcome == "paused":
        return "paused"
    if summary.outcome == HELD:
        return "held"
    if summary.outcome == "unchanged":
        return "unchanged"
    if summary.outcome == "rolled_back":
        return "bad"
    # Another artifact under the same version: the artifact is wrong, not the version.
    if summary.failed_step in VERSION_STEPS and summary.failed_check != "artifact":
        return "bad"
    return "failed"


def _apply_recoveries(
    summaries: dict[str, ReleaseSummary], records: Iterable[Mapping[str, Any]]
) -> None:
    """A recover record closes the interrupted release it names."""
    for record in records:
        if record.get("step") != "recover" or record.get("outcome") not in ("ok", "failed"):
            continue
        evidence = _evidence(record)
        target = summaries.get(str(evidence.get("recovered_release_id")))
        if target is None or target.outcome is not None:
            continue
        target.state = str(evidence.get("state") or "rolled-back")
        target.outcome = str(evidence.get("outcome") or "recovered")
        target.finished_at = record.get("finished_at") or record.get("ts")
        target.message = record.get("message")
        target.recovered_by = str(record.get("release_id"))
        target.verified = target.state == "verified"


def _apply_promotions(summaries: Mapping[str, ReleaseSummary]) -> None:
    """A promote keeps the paused release it names: a person accepted it."""
    for summary in summaries.values():
        if summary.command != "promote" or summary.outcome != "promoted":
            continue
        target = summaries.get(str(summary.promoted))
        if target is not None and target.state == "paused":
            target.state = "promoted"


def _apply_aborts(summaries: Mapping[str, ReleaseSummary]) -> None:
    """An abort ends the held release it names: traffic never moved to it."""
    for summary in summaries.values():
        if summary.command != "abort" or summary.outcome != ABORTED:
            continue
        target = summaries.get(str(summary.aborted))
        if target is not None and target.state == "held":
            target.state = "aborted"


def _apply_rollbacks(summaries: Sequence[ReleaseSummary]) -> None:
    """A manual rollback takes traffic from the release live on its colour."""
    for index, summary in enumerate(summaries):
        if summary.command != "rollback" or summary.outcome != "rolled_back":
            continue
        for earlier in reversed(summaries[:index]):
            if earlier.command == "release" and earlier.state in LIVE_STATES:
                if earlier.colour == summary.previous_colour:
                    earlier.state = "rolled-back"
                break


def summarize(records: Iterable[Mapping[str, Any]]) -> list[ReleaseSummary]:
    """Every release, rollback and other command in the journal, oldest first."""
    record_list = list(records)
    summaries = {rid: _summarize(rid, recs) for rid, recs in _grouped(record_list).items()}
    _apply_recoveries(summaries, record_list)
    _apply_promotions(summaries)
    _apply_aborts(summaries)
    ordered = list(summaries.values())
    _apply_rollbacks(ordered)
    for summary in ordered:
        # The release still has no closing record and nobody recovered it: its command
        # is either still running or died; only the lock can tell which.
        if summary.outcome is None and summary.state in ("started", "prepared", "active"):
            summary.state = "interrupted" if summary.lock_id else summary.state
    return ordered


def unfinished_release(
    records: Iterable[Mapping[str, Any]],
    lock_id: str | None = None,
    exclude_release_id: str | None = None,
) -> ReleaseSummary | None:
    """The latest command that took the lock and never closed; with ``lock_id``, only
    the one that held that lock (the lock just taken over from a dead controller).
    ``exclude_release_id`` is the command asking, which is open too."""
    for summary in reversed(summarize(records)):
        if summary.state != "interrupted" or summary.release_id == exclude_release_id:
            continue
        if lock_id is None or summary.lock_id == lock_id:
            return summary
    return None


def held_release(summaries: Sequence[ReleaseSummary]) -> ReleaseSummary | None:
    """The release held before its switch (`bluegreen promote` or abort), if any."""
    return next((s for s in reversed(summaries) if s.state == "held"), None)


def paused_release(summaries: Sequence[ReleaseSummary]) -> ReleaseSummary | None:
    """The release that waits for a person (`bluegreen promote` or rollback), if any."""
    return next((s for s in reversed(summaries) if s.state == "paused"), None)


def last_verified(
    summaries: Sequence[ReleaseSummary], exclude_versions: Iterable[str] = ()
) -> ReleaseSummary | None:
    """The newest release that passed its analysis and was not found bad since."""
    excluded = set(exclude_versions)
    refused = rollback_refused_versions(summaries, allow_unverified=True)
    for summary in reversed(summaries):
        if summary.command != "release" or summary.version in excluded:
            continue
        if summary.verified and summary.version not in refused:
            return summary
    return None


def version_states(summaries: Sequence[ReleaseSummary]) -> dict[str, dict[str, Any]]:
    """Each version's newest release: its state (verified, unverified, bad...), id and
    message, for `bluegreen status` to say what a colour runs is worth."""
    states: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        if summary.command == "release" and summary.version and summary.state != "unchanged":
            states[summary.version] = {
                "state": summary.state,
                "release_id": summary.release_id,
                "message": summary.message,
            }
    return states


def rollback_refused_versions(
    summaries: Sequence[ReleaseSummary], allow_unverified: bool = False
) -> dict[str, str]:
    """Versions a rollback must not send traffic to, each with the reason.

    The newest verdict on a version decides: bad after verified is bad, verified after
    bad is verified again. A version with neither was never verified: interrupted,
    recovered before it was judged, or live but unverified (nothing measured it);
    ``allow_unverified`` accepts those, never a bad one. Versions the journal does not know
    (installed before it began) are not listed: nothing says they are bad, and refusing
    them would leave an operator without a rollback in an emergency.
    """
    verdicts: dict[str, str] = {}
    seen: dict[str, ReleaseSummary] = {}
    for summary in summaries:
        version = summary.version
        if summary.command != "release" or not version or summary.state == "unchanged":
            continue
        seen[version] = summary
        if summary.state == "bad":
            verdicts[version] = f"marked bad by release {summary.release_id}"
        elif summary.verified or summary.state == "promoted":
            verdicts[version] = ""
    refused = {version: reason for version, reason in verdicts.items() if reason}
    for version, summary in seen.items():
        if version in verdicts or allow_unverified:
            continue
        what = (
            "went live but nothing measured it healthy"
            if summary.state == "unverified"
            else f"ended {summary.state}"
        )
        refused[version] = (
            f"never verified (release {summary.release_id} {what}): roll back to it with "
            "--allow-unverified"
        )
    return refused


def recovery_action(
    interrupted: ReleaseSummary, live_colours: Mapping[str, str], command: str
) -> RecoveryAction:
    """What the next command does about a release whose controller died.

    ``live_colours`` is the live colour each load balancer reports now. Traffic that is
    split between colours, or on a colour the release never switched to, goes back to
    the previous colour; a release that switched every load balancer is judged again
    (``release``) or rolled back (``rollback``); one that never switched only needs its
    idle colour put back.
    """
    action = _traffic_recovery(interrupted, live_colours, command)
    window = interrupted.window
    if window is None or not window.open:
        return action
    restore = None if window.migrated else window.snapshot_id
    if restore:
        note = (
            f"; its maintenance window is closed after snapshot {restore}, taken inside it,"
            " is restored (the migration may have stopped halfway)"
        )
    elif window.migrated:
        note = "; its maintenance window is closed (the migration had finished)"
    else:
        note = "; its maintenance window is closed (the database was not touched yet)"
    if action.action == "close":
        action = RecoveryAction("restore_idle", action.traffic_colour, action.reason)
    return replace(action, reason=action.reason + note, close_window=True, restore_snapshot=restore)


def _traffic_recovery(
    interrupted: ReleaseSummary, live_colours: Mapping[str, str], command: str
) -> RecoveryAction:
    """What to do about the traffic of an interrupted release (see recovery_action)."""
    previous, new = interrupted.previous_colour, interrupted.colour
    colours = set(live_colours.values())
    if interrupted.command != "release" or not previous or not new:
        return RecoveryAction("close", previous, "it changed no traffic; recording its end")
    if colours == {previous}:
        return RecoveryAction(
            "restore_idle",
            previous,
            f"traffic never left {previous}; {new} is put back on the release it ran before",
        )
    if colours == {new}:
        if command == "release":
            return RecoveryAction(
                "resume",
                new,
                f"every load balancer had switched to {new}; its signals are judged again"
                " before it is kept",
            )
        return RecoveryAction(
            "rollback", previous, f"traffic was on {new}; it goes back to {previous}"
        )
    split = ", ".join(f"{lb}={colour}" for lb, colour in sorted(live_colours.items()))
    return RecoveryAction(
        "rollback",
        previous,
        f"the switch was cut short ({split}); every load balancer goes back to {previous}",
    )
