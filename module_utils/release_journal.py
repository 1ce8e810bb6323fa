# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The release journal: one JSON object per line for every step of every release.

The journal is the evidence a release report is rendered from, so a record is built
here by pure functions (times validated, duration computed, secrets redacted), then
appended by ``append_line`` (the module on the host, the action plugin for the
controller's copy). ``read_journal`` is the reader the CLI uses; it survives the
one kind of damage an append-only file can suffer, a last line cut short by a crash.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

# Modules run on the managed host's Python, which ansible-core 2.19 allows down to 3.8,
# so this file avoids newer stdlib names such as datetime.UTC.
UTC = timezone.utc  # noqa: UP017

OUTCOMES = ("started", "ok", "failed", "skipped", "info")
REDACTED = "********"


class JournalError(Exception):
    """A record cannot be written as given; the message says what to fix."""


@dataclass(frozen=True)
class JournalEntry:
    """One line of the journal; field order is the order on disk."""

    ts: str
    release_id: str
    step: str
    outcome: str
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    host: str | None
    message: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_line(self) -> str:
        """The record as one line of JSON, newline included; json escapes any newlines."""
        return json.dumps(self.as_dict(), ensure_ascii=False, default=str) + "\n"


@dataclass(frozen=True)
class StepTimes:
    started_at: str | None
    finished_at: str | None
    duration_s: float | None


@dataclass(frozen=True)
class SkippedLine:
    """A journal line that is not a record, and why."""

    line_number: int
    text: str
    reason: str


class JournalRecords(list):
    """The records of a journal in order (a ``list[dict]``).

    ``skipped`` lists the lines that could not be read as records, so a caller can warn
    about them instead of failing on them.
    """

    def __init__(self, records: Iterable[dict[str, Any]] = (), skipped: Iterable[SkippedLine] = ()):
        super().__init__(records)
        self.skipped: list[SkippedLine] = list(skipped)


def format_timestamp(moment: datetime) -> str:
    """UTC, millisecond precision, Z suffix: 2026-11-22T02:03:04.120Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str, name: str) -> datetime:
    """Parse an ISO-8601 time given as option ``name``; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise JournalError(
            f"{name} {text!r} is not an ISO-8601 time; give it like 2026-11-22T02:03:04Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def step_times(
    outcome: str, started_at: str | None, finished_at: str | None, now: datetime
) -> StepTimes:
    """Normalise a step's times to UTC and compute its duration.

    A step that has only started is stamped now unless told otherwise, and has no end;
    any other outcome ends now unless told otherwise.
    """
    started = parse_timestamp(started_at, "started_at") if started_at else None
    if outcome == "started":
        if finished_at:
            raise JournalError(
                f"finished_at was given for outcome=started; record the end of step as a"
                f" second record with its outcome (got finished_at {finished_at!r})"
            )
        return StepTimes(format_timestamp(started or now), None, None)
    finished = parse_timestamp(finished_at, "finished_at") if finished_at else now
    if started is None:
        return StepTimes(None, format_timestamp(finished), None)
    if finished < started:
        raise JournalError(
            f"finished_at {format_timestamp(finished)} is before started_at"
            f" {format_timestamp(started)}; check the clock or the values passed in"
        )
    return StepTimes(
        format_timestamp(started),
        format_timestamp(finished),
        round((finished - started).total_seconds(), 3),
    )


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every occurrence of any secret, in strings, keys and numbers, by REDACTED."""
    distinct = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not distinct:
        return value
    # Longest first, in one pass, so a secret that contains another is hidden whole.
    pattern = re.compile("|".join(re.escape(s) for s in distinct))
    return _redact(value, pattern)


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_redact(str(k), pattern): _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, pattern) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
        redacted = pattern.sub(REDACTED, text)
        return value if redacted == text else redacted
    return value


def build_entry(
    *,
    release_id: str,
    step: str,
    outcome: str,
    now: datetime,
    started_at: str | None = None,
    finished_at: str | None = None,
    host: str | None = None,
    message: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    redact_values: Iterable[str] = (),
) -> JournalEntry:
    """The record to append for one step, with its secrets already redacted."""
    if not release_id.strip():
        raise JournalError("release_id is empty; every record must name its release")
    if not step.strip():
        raise JournalError("step is empty; name the step, for example deploy or switch")
    if outcome not in OUTCOMES:
        raise JournalError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    times = step_times(outcome, started_at, finished_at, now)
    secrets = list(redact_values)
    return JournalEntry(
        ts=format_timestamp(now),
        release_id=release_id,
        step=step,
        outcome=outcome,
        started_at=times.started_at,
        finished_at=times.finished_at,
        duration_s=times.duration_s,
        host=host,
        message=redact(message, secrets),
        evidence=redact(dict(evidence or {}), secrets),
    )


def plan_append(line: str, newlines_in_file: int, ends_with_newline: bool) -> tuple[bytes, int]:
    """The bytes to append for ``line`` and the 1-based line number it will have.

    A file whose last line was cut short by a crash gets a newline first, so the
    fragment stays a line of its own and the new record is whole.
    """
    data = line.encode("utf-8")
    if ends_with_newline:
        return data, newlines_in_file + 1
    return b"\n" + data, newlines_in_file + 2


def read_journal(lines: Iterable[str]) -> JournalRecords:
    """Parse journal lines (as read from the file, newlines kept or not).

    Blank lines are ignored. A line that is not a JSON object is skipped and listed in
    ``skipped``: at the end of the file that is a record whose write was interrupted.
    """
    records: list[dict[str, Any]] = []
    skipped: list[SkippedLine] = []
    numbered = [
        (number, raw.rstrip("\r\n")) for number, raw in enumerate(lines, start=1) if raw.strip()
    ]
    last_line_number = numbered[-1][0] if numbered else 0
    for line_number, text in numbered:
        try:
            record = json.loads(text)
        except ValueError:
            reason = (
                "incomplete record at the end of the journal (a write was interrupted)"
                if line_number == last_line_number
                else "not valid JSON (a write was interrupted)"
            )
            skipped.append(SkippedLine(line_number, text, reason))
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped.append(SkippedLine(line_number, text, "not a JSON object"))
    return JournalRecords(records, skipped)


# Appending, under a lock: the module on the host and the action plugin for the
# controller's copy write through these, so both copies get the same bytes.
SCAN_CHUNK = 1 << 20


def count_lines(fd: int) -> tuple[int, bool]:
    """The number of newlines in the open file, and whether it ends with one (or is empty)."""
    size = os.fstat(fd).st_size
    newlines, offset, last = 0, 0, b"\n"
    while offset < size:
        chunk = os.pread(fd, min(SCAN_CHUNK, size - offset), offset)
        if not chunk:
            break
        newlines += chunk.count(b"\n")
        offset += len(chunk)
        last = chunk[-1:]
    return newlines, last == b"\n"


def next_line_number(path: str, line: str) -> int:
    """The line number a record would get, without writing (check mode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return plan_append(line, *count_lines(fd))[1]
    finally:
        os.close(fd)


def append_line(path: str, line: str) -> int:
    """Append one line with a single write under an exclusive flock; return its line number."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    created = not os.path.exists(path)
    # 0600 until set_mode_if_different applies the requested mode.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data, line_number = plan_append(line, *count_lines(fd))
        written = os.write(fd, data)
        if written != len(data):
            raise JournalError(
                f"only {written} of {len(data)} bytes of the record reached {path}; is the"
                " disk full? The partial line will be skipped by readers"
            )
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(parent or ".", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return line_number
