# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Release policy: when an inventory may be released to, and who approved it.

An inventory names allowed windows (releases only then) and refused windows (never
then), as wall-clock times in one time zone, for example allowed 02:00-04:00 and
refused 09:00-17:00 Europe/Berlin. Windows are compared with the local time of the
instant being judged (zoneinfo), so they follow daylight saving time: "02:00-04:00"
means those hours on the clock on the wall, whatever the offset that day. A window
whose end is not after its start crosses midnight; its days are the days it starts on.

Everything here is a pure function of its arguments (the time is passed in), so the
module and the tests share one definition of "inside a window".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - Python < 3.9 on a managed host
    ZoneInfo = None  # type: ignore[assignment,misc]
    ZoneInfoNotFoundError = KeyError  # type: ignore[assignment,misc]

UTC = timezone.utc  # noqa: UP017

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
MINUTES_PER_DAY = 24 * 60
# How far ahead the next opening is searched: a week covers every weekly pattern.
SEARCH_MINUTES = 8 * MINUTES_PER_DAY
FORCE_HINT = (
    'to release anyway, give the reason: bluegreen release --force-window "REASON"'
    ' (ansible-playbook: -e force_window="REASON")'
)
APPROVAL_HINT = (
    "name who approved it: bluegreen release --approved-by NAME"
    " (ansible-playbook: -e approved_by=NAME)"
)

_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


class PolicyError(Exception):
    """The policy as configured cannot be applied; the message says what to fix."""


@dataclass(frozen=True)
class Window:
    """A daily span of wall-clock minutes [start, end) on some days of the week."""

    start: int
    end: int
    days: frozenset[int] = ALL_DAYS
    name: str = ""

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def label(self) -> str:
        text = f"{format_clock(self.start)}-{format_clock(self.end)}"
        if self.days != ALL_DAYS:
            text += " " + format_days(self.days)
        return f"{self.name} ({text})" if self.name else text


@dataclass(frozen=True)
class WindowDecision:
    """Whether an instant may be released at, and why."""

    allowed: bool
    local_time: str
    timezone: str
    reason: str
    refused_by: str | None = None
    allowed_by: str | None = None
    next_opening: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's verdict on a release: proceed or not, and everything to record."""

    proceed: bool
    message: str
    window: WindowDecision
    forced: bool = False
    force_reason: str | None = None
    approval_required: bool = False
    approved_by: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        result = dict(self.__dict__)
        result["window"] = self.window.as_dict()
        return result


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_days(days: Iterable[int]) -> str:
    return ",".join(DAY_NAMES[day] for day in sorted(days))


def parse_clock(text: Any, what: str) -> int:
    """Minutes after midnight of 'HH:MM' (24:00 is the end of the day)."""
    match = _CLOCK.match(str(text).strip())
    minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not match or minutes > MINUTES_PER_DAY:
        raise PolicyError(f"{what} {text!r} is not a time of day; write it as HH:MM, e.g. 02:00")
    return minutes


def parse_days(value: Any, what: str) -> frozenset[int]:
    """Days from a list of names (mon, tue, ...) or ranges ('mon-fri'); none means every day."""
    if value in (None, "", []):
        return ALL_DAYS
    items = [value] if isinstance(value, str) else list(value)
    days: set[int] = set()
    for item in items:
        for part in str(item).lower().replace(" ", "").split(","):
            first, _, last = part.partition("-")
            if first not in DAY_NAMES or (last and last not in DAY_NAMES):
                raise PolicyError(
                    f"{what} names the day {part!r}; use {', '.join(DAY_NAMES)} or a range"
                    " like mon-fri"
                )
            start, stop = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
            days.update((start + offset) % 7 for offset in range((stop - start) % 7 + 1))
    return frozenset(days)


def parse_window(spec: Any, what: str) -> Window:
    """A window from ``{start: '02:00', end: '04:00', days: [mon, tue], name: ...}``
    or the short form ``'02:00-04:00'``."""
    if isinstance(spec, str):
        start, sep, end = spec.partition("-")
        if not sep:
            raise PolicyError(f"{what} {spec!r} is not a window; write it as 02:00-04:00")
        spec = {"start": start, "end": end}
    if not isinstance(spec, Mapping) or "start" not in spec or "end" not in spec:
        raise PolicyError(
            f"{what} {spec!r} is not a window; give start and end, e.g."
            " {start: '02:00', end: '04:00', days: [mon, tue]}"
        )
    unknown = set(spec) - {"start", "end", "days", "name"}
    if unknown:
        raise PolicyError(f"{what} has unknown keys {sorted(unknown)}; use start, end, days, name")
    start = parse_clock(spec["start"], f"{what} start")
    end = parse_clock(spec["end"], f"{what} end")
    if start == end:
        raise PolicyError(
            f"{what} starts and ends at {format_clock(start)}: an empty window; for a"
            " whole day write 00:00-24:00"
        )
    if start == MINUTES_PER_DAY:
        raise PolicyError(f"{what} starts at 24:00; start it at 00:00 instead")
    return Window(
        start, end, parse_days(spec.get("days"), f"{what} days"), str(spec.get("name") or "")
    )


def parse_windows(specs: Sequence[Any] | None, what: str) -> list[Window]:
    return [parse_window(spec, f"{what}[{index}]") for index, spec in enumerate(specs or [])]


def zone(name: str) -> Any:
    if ZoneInfo is None:
        raise PolicyError("release windows need Python 3.9 or later (zoneinfo) on the controller")
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def in_window(window: Window, local: datetime) -> bool:
    """Whether the local wall-clock time falls inside the window."""
    minute = local.hour * 60 + local.minute
    day = local.weekday()
    if not window.crosses_midnight:
        return day in window.days and window.start <= minute < window.end
    return (day in window.days and minute >= window.start) or (
        (day - 1) % 7 in window.days and minute < window.end
    )


def _judge(local: datetime, allowed: Sequence[Window], refused: Sequence[Window]) -> tuple:
    refusing = next((w for w in refused if in_window(w, local)), None)
    if refusing is not None:
        return False, refusing, None
    if not allowed:
        return True, None, None
    allowing = next((w for w in allowed if in_window(w, local)), None)
    return allowing is not None, None, allowing


def next_opening(
    now: datetime, tz: Any, allowed: Sequence[Window], refused: Sequence[Window]
) -> datetime | None:
    """The first whole minute after ``now`` at which a release is allowed, within 8 days.

    Steps through real instants (UTC minutes), so days with a DST jump are handled by
    the conversion itself rather than by arithmetic on wall-clock times.
    """
    start = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for offset in range(SEARCH_MINUTES):
        moment = start + timedelta(minutes=offset)
        if _judge(moment.astimezone(tz), allowed, refused)[0]:
            return moment.astimezone(tz)
    return None


def window_decision(
    now: datetime,
    timezone_name: str,
    allowed_specs: Sequence[Any] | None,
    refused_specs: Sequence[Any] | None,
) -> WindowDecision:
    """Whether ``now`` (an aware datetime) is inside the inventory's release windows."""
    if now.tzinfo is None:
        raise PolicyError("the time to judge must carry its UTC offset")
    tz = zone(timezone_name)
    allowed = parse_windows(allowed_specs, "allowed window")
    refused = parse_windows(refused_specs, "refused window")
    local = now.astimezone(tz)
    local_text = local.strftime("%a %Y-%m-%d %H:%M %Z")
    tz_name = timezone_name or "UTC"
    ok, refusing, allowing = _judge(local, allowed, refused)
    if ok:
        reason = (
            f"{local_text} is inside the allowed window {allowing.label()}"
            if allowing
            else (
                f"{local_text} is outside every refused window"
                if refused
                else "no release windows are configured"
            )
        )
        return WindowDecision(
            True, local_text, tz_name, reason, allowed_by=allowing and allowing.label()
        )
    opening = next_opening(now, tz, allowed, refused)
    opens = (
        f"; the next allowed time is {opening.strftime('%a %Y-%m-%d %H:%M %Z')}" if opening else ""
    )
    if refusing is not None:
        reason = f"{local_text} is inside the refused window {refusing.label()} ({tz_name})"
    else:
        reason = (
            f"{local_text} is outside the allowed windows "
            f"{', '.join(w.label() for w in allowed)} ({tz_name})"
        )
    return WindowDecision(
        False,
        local_text,
        tz_name,
        reason + opens,
        refused_by=refusing and refusing.label(),
        next_opening=opening.isoformat() if opening else None,
    )


def policy_decision(
    window: WindowDecision,
    force_reason: str | None,
    approval_required: bool,
    approved_by: str | None,
    enforce: bool = True,
) -> PolicyDecision:
    """The verdict: a refused window needs a forcing reason, a required approval a name.

    With ``enforce`` false (a rollback: an emergency), nothing is refused, but what
    would have been is still said, so it can be recorded.
    """
    force_reason = (force_reason or "").strip() or None
    approved_by = (approved_by or "").strip() or None
    problems: list[str] = []
    if not window.allowed and not force_reason:
        problems.append(f"release window: {window.reason}; {FORCE_HINT}")
    if approval_required and not approved_by:
        problems.append(f"approval: this inventory requires an approval; {APPROVAL_HINT}")
    forced = not window.allowed and force_reason is not None
    if problems and enforce:
        message = "release refused by the inventory's policy: " + " -- ".join(problems)
        proceed = False
    else:
        parts = [window.reason]
        if forced:
            parts.append(f"window forced: {force_reason}")
        elif not window.allowed:
            parts.append("outside the release windows, allowed because rollback is an emergency")
        if approved_by:
            parts.append(f"approved by {approved_by}")
        elif approval_required:
            parts.append("no approval given, allowed because rollback is an emergency")
        message = "; ".join(parts)
        proceed = True
    return PolicyDecision(
        proceed=proceed,
        message=message,
        window=window,
        forced=forced,
        force_reason=force_reason,
        approval_required=approval_required,
        approved_by=approved_by,
        problems=problems,
    )


def parse_now(text: str | None, default: datetime) -> datetime:
    """An ISO-8601 instant (one without an offset is UTC), or ``default``."""
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(
            f"now {text!r} is not an ISO-8601 time, e.g. 2026-11-22T02:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
