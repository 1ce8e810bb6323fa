# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Decisions behind the release lock: one release per app at a time.

The lock is a directory (``mkdir`` is atomic on every POSIX filesystem) holding an
``owner.json`` that says who took it and when. Everything here is pure: the module
reads the directory and passes what it found in, so the rules can be tested without
a host.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

# Modules run on the managed host's Python, which ansible-core 2.19 allows down to 3.8,
# so this file avoids newer stdlib names such as datetime.UTC.
UTC = timezone.utc  # noqa: UP017

OWNER_FILE = "owner.json"
# Keys the lock itself writes into owner.json; the caller's owner dict may not reuse them.
RESERVED_OWNER_KEYS = ("lock_id", "acquired_at", "lease_seconds", "paused")
BREAK_COMMAND = "bluegreen lock break {lock_id}"
FORCE_BREAK_COMMAND = "bluegreen lock break --force"


class LockError(Exception):
    """The lock cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class ObservedLock:
    """What the lock path looked like when it was read."""

    exists: bool
    holder: dict[str, Any] | None = None
    # mtime of the lock directory, the only age we have when owner.json is unusable.
    mtime: float | None = None
    # Why holder is None although the directory exists (owner.json missing or corrupt).
    problem: str | None = None

    @property
    def incomplete(self) -> bool:
        return self.exists and self.holder is None

    @property
    def lock_id(self) -> str | None:
        return None if self.holder is None else self.holder.get("lock_id")

    @property
    def paused(self) -> bool:
        """Held by a release that went live unverified and waits for a person."""
        return self.holder is not None and isinstance(self.holder.get("paused"), dict)

    @property
    def held(self) -> bool:
        """Paused before its switch: traffic never moved, promote or abort finish it."""
        return self.paused and bool((self.holder or {}).get("paused", {}).get("held"))


@dataclass(frozen=True)
class LockDecision:
    """What the module should do, and whether that changes anything."""

    action: Literal["acquire", "keep", "release", "none", "refuse", "takeover", "pause"]

    @property
    def changed(self) -> bool:
        return self.action in ("acquire", "release", "takeover", "pause")


def format_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z suffix, to the second: 2026-11-22T02:03:04Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 time; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_lock_id() -> str:
    return uuid.uuid4().hex


def owner_record(
    owner: Mapping[str, Any], lock_id: str, acquired_at: datetime, lease_seconds: int
) -> dict[str, Any]:
    """The content of owner.json: the lock's own fields first, then the caller's owner."""
    clashes = sorted(set(owner) & set(RESERVED_OWNER_KEYS))
    if clashes:
        raise LockError(
            f"owner may not contain {', '.join(clashes)}: the lock records those itself; "
            "pass the id as lock_id and the lease as lease_seconds"
        )
    return {
        "lock_id": lock_id,
        "acquired_at": format_utc(acquired_at),
        "lease_seconds": lease_seconds,
        **owner,
    }


def observe_lock(exists: bool, owner_text: str | None, mtime: float | None) -> ObservedLock:
    """Interpret what was read from the lock path.

    ``owner_text`` is the content of owner.json, or None when the file is missing.
    """
    if not exists:
        return ObservedLock(exists=False)
    if owner_text is None:
        return ObservedLock(exists=True, mtime=mtime, problem=f"{OWNER_FILE} is missing")
    try:
        holder = json.loads(owner_text)
    except ValueError as exc:
        return ObservedLock(
            exists=True, mtime=mtime, problem=f"{OWNER_FILE} is not valid JSON ({exc})"
        )
    if not isinstance(holder, dict) or not holder.get("lock_id"):
        return ObservedLock(exists=True, mtime=mtime, problem=f"{OWNER_FILE} has no lock_id")
    return ObservedLock(exists=True, holder=holder, mtime=mtime)


def lock_age_seconds(observed: ObservedLock, now: datetime) -> int | None:
    """Whole seconds since the lock was taken: from acquired_at, else the directory mtime."""
    if not observed.exists:
        return None
    started: float | None = observed.mtime
    if observed.holder is not None:
        with contextlib.suppress(KeyError, ValueError):
            started = parse_utc(str(observed.holder["acquired_at"])).timestamp()
    if started is None:
        return None
    return max(0, int(now.timestamp() - started))


def lease_of(observed: ObservedLock, default_lease_seconds: int) -> int:
    """The holder's own lease (recorded when it took the lock), else the caller's."""
    if observed.holder is not None:
        recorded = observed.holder.get("lease_seconds")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
            return recorded
    return default_lease_seconds


def lock_is_stale(observed: ObservedLock, now: datetime, default_lease_seconds: int) -> bool:
    """Whether the lock has outlived its lease.

    A stale lock is only reported, never broken here: the holder may be a slow release,
    and only an operator (or a later liveness check of the owner's process, which
    belongs in this function) can tell that it is dead.
    """
    if observed.paused:
        return False  # it waits for a person, however long that takes
    age = lock_age_seconds(observed, now)
    return age is not None and age > lease_of(observed, default_lease_seconds)


def decide_acquire(observed: ObservedLock, lock_id: str | None) -> LockDecision:
    """Take a free lock, keep one already held under lock_id, refuse anything else."""
    if not observed.exists:
        return LockDecision("acquire")
    if lock_id and observed.lock_id == lock_id:
        return LockDecision("keep")
    return LockDecision("refuse")


def decide_takeover(
    observed: ObservedLock,
    takeover_lock_id: str,
    holder_gone: bool,
    stale: bool,
    takeover_paused: bool = False,
    takeover_held: bool = False,
) -> LockDecision:
    """Take over the lock of a dead release: only the lock that was examined (its id),
    and only when its owner is known to be gone or it outlived its lease. A paused
    release's lock is taken over only by a command that finishes it (promote, rollback),
    never because its controller has gone: pausing is how it ends. A release held
    before its switch is finished by promote or abort only (`takeover_held`): a
    rollback has nothing of it to undo."""
    if not observed.exists:
        return LockDecision("acquire")
    if observed.lock_id != takeover_lock_id:
        return LockDecision("refuse")
    if observed.held:
        return LockDecision("takeover" if takeover_held else "refuse")
    if observed.paused:
        return LockDecision("takeover" if takeover_paused else "refuse")
    return LockDecision("takeover" if holder_gone or stale else "refuse")


def decide_pause(observed: ObservedLock, lock_id: str | None) -> LockDecision:
    """Mark the lock held under lock_id as paused (once); anyone else's is refused."""
    if not observed.exists or not lock_id or observed.lock_id != lock_id:
        return LockDecision("refuse")
    return LockDecision("keep" if observed.paused else "pause")


def paused_record(
    holder: Mapping[str, Any], now: datetime, held_until: str | None = None
) -> dict[str, Any]:
    """owner.json of a lock its release keeps while it waits for a person; `held_until`
    for a release held before its switch (until its hold expires)."""
    paused: dict[str, Any] = {"since": format_utc(now)}
    if held_until is not None:
        paused.update(held=True, until=held_until)
    return {**holder, "paused": paused}


def paused_advice(observed: ObservedLock) -> str:
    """What to do about a paused (or held) release's lock."""
    paused = (observed.holder or {}).get("paused", {})
    since = paused.get("since", "an unknown time")
    if observed.held:
        return (
            f"that release is HELD before its switch for a person since {since} (until "
            f"{paused.get('until', 'an unknown time')}): run `bluegreen promote` to switch "
            "traffic to it or `bluegreen abort` to end it"
        )
    return (
        f"that release went live unverified and is PAUSED for a person since {since}: run "
        "`bluegreen promote` to keep it or `bluegreen rollback` to send traffic back"
    )


def takeover_refused_message(
    path: str,
    observed: ObservedLock,
    now: datetime,
    default_lease_seconds: int,
    takeover_lock_id: str,
) -> str:
    """Why a takeover did not happen: another lock by now, or a holder still alive."""
    summary = lock_summary(path, observed, now, default_lease_seconds)
    if observed.lock_id != takeover_lock_id:
        return (
            f"{summary}; it is no longer lock {takeover_lock_id}, which was to be taken over,"
            " so another release took the lock meanwhile: wait for it to finish"
        )
    if observed.paused:
        return f"{summary}; {paused_advice(observed)}"
    return (
        f"{summary}; its owner is not known to be gone and its lease has not run out, so it"
        f" was not taken over: wait for it to finish, or {break_advice(observed)}"
    )


def owner_process_gone(
    holder: Mapping[str, Any] | None,
    this_controller: str,
    started_now: str | None,
) -> bool:
    """Whether the controller process that took the lock has died.

    Only a controller on the same host can tell: ``started_now`` is the start time it
    reads for the holder's pid now (None when no such process runs). A pid that runs
    again with another start time belongs to another process.
    """
    if not holder or holder.get("controller") != this_controller:
        return False
    recorded = holder.get("controller_pid_started")
    if not holder.get("controller_pid") or not recorded:
        return False
    return started_now is None or started_now.strip() != str(recorded).strip()


def decide_release(observed: ObservedLock, lock_id: str | None, force: bool) -> LockDecision:
    """Release a lock held under lock_id, or any lock when forced; a free lock is a no-op."""
    if not observed.exists:
        return LockDecision("none")
    if force or (lock_id and observed.lock_id == lock_id):
        return LockDecision("release")
    return LockDecision("refuse")


def format_duration(seconds: int) -> str:
    """Short human duration: 12 s, 5 min 3 s, 2 h 10 min, 3 d 4 h."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def describe_holder(holder: Mapping[str, Any]) -> str:
    """Who holds the lock, as an operator would say it: alice@ctl (release R, version V)."""
    user, host = holder.get("user"), holder.get("controller") or holder.get("controller_host")
    who = f"{user}@{host}" if user and host else str(user or host or "an unnamed owner")
    details = [
        f"{label} {holder[key]}"
        for key, label in (
            ("release_id", "release"),
            ("version", "version"),
            ("controller_pid", "pid"),
            ("pid", "pid"),
        )
        if holder.get(key) not in (None, "")
    ]
    return f"{who} ({', '.join(details)})" if details else who


def lock_summary(
    path: str, observed: ObservedLock, now: datetime, default_lease_seconds: int
) -> str:
    """Who holds the lock and for how long, or why it is incomplete."""
    age = lock_age_seconds(observed, now)
    age_text = "age unknown" if age is None else f"{format_duration(age)} ago"
    lease = lease_of(observed, default_lease_seconds)
    stale = (
        f"; it is older than its lease of {format_duration(lease)} and probably stale"
        if lock_is_stale(observed, now, default_lease_seconds)
        else ""
    )
    if observed.holder is None:
        modified = (
            ""
            if observed.mtime is None
            else f"{format_utc(datetime.fromtimestamp(observed.mtime, UTC))}, "
        )
        return (
            f"release lock {path} is incomplete: the directory exists but {observed.problem}"
            f" (directory last modified {modified}{age_text}){stale}"
        )
    holder = observed.holder
    return (
        f"release lock {path} is held by {describe_holder(holder)}"
        f" since {holder.get('acquired_at', 'an unknown time')}"
        f" ({age_text}, lock id {observed.lock_id}){stale}"
    )


def break_advice(observed: ObservedLock) -> str:
    """The command that breaks this lock, for an operator who knows its release is dead."""
    if observed.holder is None:
        return f"if no release is running, break the lock with: {FORCE_BREAK_COMMAND}"
    return "if that release is dead, break the lock with: " + BREAK_COMMAND.format(
        lock_id=observed.lock_id
    )


def acquire_refused_message(
    path: str, observed: ObservedLock, now: datetime, default_lease_seconds: int
) -> str:
    """Why the lock cannot be taken, and what to do about it."""
    summary = lock_summary(path, observed, now, default_lease_seconds)
    if observed.holder is None:
        return (
            f"{summary}. Another release may be taking the lock at this very moment, or one"
            f" crashed while taking it; {break_advice(observed)}"
        )
    if observed.paused:
        return f"{summary}; {paused_advice(observed)}"
    return f"{summary}; wait for it to finish, or {break_advice(observed)}"


def release_refused_message(
    path: str,
    observed: ObservedLock,
    now: datetime,
    default_lease_seconds: int,
    lock_id: str | None,
) -> str:
    """Why the lock was not released: it is not the caller's."""
    summary = lock_summary(path, observed, now, default_lease_seconds)
    if observed.holder is None:
        return f"{summary}; it has no lock id, so it was not released; {break_advice(observed)}"
    return f"{summary}, not by lock id {lock_id}, so it was not released; {break_advice(observed)}"


def owner_json(record: Mapping[str, Any] | None) -> str:
    """owner.json as written to disk (and as shown in a diff); empty when there is no lock."""
    return "" if record is None else json.dumps(record, indent=2) + "\n"
