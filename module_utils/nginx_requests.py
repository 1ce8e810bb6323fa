# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The nginx_requests module's parsing, counting and decisions, as pure functions.

nginx writes one JSON object per request to the service's request log (a
``log_format ... escape=json``), naming the colour it routed the request to:

    {"time":1733500000.123,"colour":"green","status":200,"request_time":0.012,
     "upstream_time":"0.011","upstream":"10.0.0.5:8002","method":"GET","uri":"/notes",
     "bytes":123}

The module remembers a place in that log (a mark: path, inode, offset, time) and later
reads every complete line after it. This file says where to read from (``plan_read``:
the same file, the rotated one then the new one, or from 0 after a truncation), parses
each line (``parse_line``) and counts the lines per colour (``Tally``): requests,
errors, statuses, a latency histogram in whole milliseconds, bytes, and the same per
route; and per colour the upstream time, in the same kind of histogram. The module does
the reading.

``upstream_time`` is ``$upstream_response_time``: ``-`` when no upstream server
answered, one time (``0.011``), or one per server tried, ``, ``-separated for retries
(``proxy_next_upstream``) and `` : ``-separated across internal redirects, any of which
may be ``-``. A request's upstream time is the sum of its times, the whole time nginx
waited on the colour's servers: without a retry that is the answering server's time.
``request_time`` minus it is nginx's and the client connection's share.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# The route that the routes beyond max_routes are merged into.
OTHER_ROUTE = "other"
# $upstream_addr when nginx answered the request itself (escape=json logs an unset
# variable as "", the default escaping as "-").
NO_UPSTREAM = ("", "-")
# Highest status taken as an HTTP status; anything else makes the line unparsed.
MAX_STATUS = 999
_INFINITY = math.inf
_decode = json.JSONDecoder().decode


class NginxRequestsError(Exception):
    """A request the module refuses; the message says what to change."""


class Request(NamedTuple):
    """One parsed log line. ``colour`` is "" when nginx answered itself (not routed);
    ``upstream_ms`` is None when the line has no upstream time (see ``upstream_ms()``)."""

    colour: str
    routed: bool
    status: int
    latency_ms: int
    uri: str
    bytes: int
    upstream_ms: int | None


@dataclass(frozen=True)
class Mark:
    """A place in the log: the file's inode (None: no file yet), a byte offset, a time."""

    path: str
    inode: int | None
    offset: int
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "inode": self.inode, "offset": self.offset, "at": self.at}


@dataclass(frozen=True)
class FileState:
    """What the module found out about one file before reading it.

    ``line_start`` says whether the mark's offset is the start of a line in this file
    (offset 0, or a newline just before it). Marks are always taken at line starts, so an
    offset that is not one means the file was truncated and written again since.
    """

    inode: int
    size: int
    line_start: bool = True


@dataclass(frozen=True)
class ReadPlan:
    """Where to read: the rotated file from ``rotated_start`` (None: not at all), then
    the file at the path from ``current_start`` (None: there is none)."""

    current_start: int | None
    rotated_start: int | None = None
    lost: bool = False
    reason: str | None = None

    @property
    def rotated(self) -> bool:
        return self.rotated_start is not None


# --- marks --------------------------------------------------------------------------


def _whole_number(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (or a string of one), else None."""
    number = _finite(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _finite(value: Any) -> float | None:
    """``value`` as a finite float (numbers and numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _bad_since(path: str, why: str) -> NginxRequestsError:
    return NginxRequestsError(
        f"since is not a mark of {path}: {why}. Pass the mark returned by state=mark (or "
        "by the previous state=read) of this same log, unchanged"
    )


def parse_mark(since: Any, path: str) -> Mark:
    """The mark given as ``since`` for reading ``path``, or NginxRequestsError."""
    if since is None:
        raise NginxRequestsError(
            f"state=read needs since, the mark to read {path} from: run nginx_requests with "
            "state=mark first (before the traffic to measure), register it and pass its "
            "mark as since, or pass the mark returned by the previous state=read"
        )
    if not isinstance(since, Mapping):
        raise _bad_since(path, f"it is a {type(since).__name__}, not a mapping")
    missing = [key for key in ("path", "inode", "offset", "at") if key not in since]
    if missing:
        raise _bad_since(path, f"it has no {', '.join(missing)}")
    marked = since["path"]
    if not isinstance(marked, str) or posixpath.normpath(marked) != posixpath.normpath(path):
        raise NginxRequestsError(
            f"since is a mark of {marked!r}, not of {path}: pass the mark returned for "
            f"path={path} (a mark of one log cannot be read in another), or set path to "
            f"{marked!r}"
        )
    inode = None if since["inode"] is None else _whole_number(since["inode"])
    if since["inode"] is not None and (inode is None or inode < 0):
        raise _bad_since(path, f"inode {since['inode']!r} is not a whole number or null")
    offset = _whole_number(since["offset"])
    if offset is None or offset < 0:
        raise _bad_since(path, f"offset {since['offset']!r} is not a whole number of 0 or more")
    if inode is None and offset != 0:
        raise _bad_since(path, f"offset {offset} with inode null (a mark of no file is at 0)")
    at = _finite(since["at"])
    if at is None:
        raise _bad_since(path, f"at {since['at']!r} is not a time in seconds")
    return Mark(path=path, inode=inode, offset=offset, at=at)


def validate_max_routes(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NginxRequestsError(
            f"max_routes {value!r} is not valid: give how many routes per colour to keep, "
            "0 or more (the rest are merged under 'other')"
        )
    return value


def window(since: float, until: float) -> dict[str, float]:
    """The window's bounds and length; a clock that went back gives a length of 0."""
    return {"since": since, "until": until, "seconds": max(0.0, until - since)}


# --- where to read ------------------------------------------------------------------


def plan_read(mark: Mark, current: FileState | None, rotated: FileState | None) -> ReadPlan:
    """Where the lines after ``mark`` are.

    ``current`` is the file at the path now (None: there is none); ``rotated`` the file
    beside it that has the mark's inode (None: none found). Only looked at when the
    inode at the path changed.
    """
    if mark.inode is None:
        # There was no file at the mark: all of a file there now came after it.
        return ReadPlan(current_start=0 if current is not None else None)
    if current is not None and current.inode == mark.inode:
        if current.size >= mark.offset and current.line_start:
            return ReadPlan(current_start=mark.offset)
        return ReadPlan(
            current_start=0,
            lost=True,
            reason=(
                f"{mark.path} was truncated since the mark (copytruncate?): it was read from "
                "its start, and what was written after the mark and before the truncation "
                "is lost"
            ),
        )
    current_start = 0 if current is not None else None
    now = "a new file" if current is not None else "no file"
    if rotated is None:
        return ReadPlan(
            current_start=current_start,
            lost=True,
            reason=(
                f"{mark.path} is {now} since the mark and no rotated file beside it has the "
                f"marked inode {mark.inode}: what was written after the mark is lost"
            ),
        )
    if rotated.size < mark.offset or not rotated.line_start:
        return ReadPlan(
            current_start=current_start,
            lost=True,
            reason=(
                f"{mark.path} was rotated since the mark and the rotated file no longer holds "
                "the marked offset: what was written after the mark is lost"
            ),
        )
    return ReadPlan(current_start=current_start, rotated_start=mark.offset)


def rotated_candidates(path: str, names: Iterable[str]) -> list[str]:
    """The names logrotate gives ``path`` when it rotates it, among ``names`` (a
    directory's entries): ``<name>.1``, then ``<name>-<anything>`` (dateext), sorted."""
    base = posixpath.basename(path)
    entries = set(names)
    found = [f"{base}.1"] if f"{base}.1" in entries else []
    found += sorted(name for name in entries if name.startswith(f"{base}-"))
    return [posixpath.join(posixpath.dirname(path), name) for name in found]


# --- parsing and counting -----------------------------------------------------------


def latency_ms(seconds: float) -> int:
    """``seconds`` in whole milliseconds, halves rounded up (nginx logs milliseconds)."""
    return math.floor(seconds * 1000.0 + 0.5)


def upstream_ms(value: Any) -> int | None:
    """``$upstream_response_time`` in whole milliseconds, or None when it gives no time.

    The sum of its times (``0.002, 0.010`` and ``0.002 : 0.010`` are 12 ms), its ``-``
    parts left out. None for ``-`` alone, an empty or missing value, and junk (a part that
    is neither ``-`` nor a time of 0 or more): the line's status and request time are
    still good, so junk here costs the request its upstream time only, never its count.
    A JSON number is read as seconds, as nginx's string would be.
    """
    if type(value) is not str:
        seconds = _finite(value)
        return None if seconds is None or seconds < 0 else latency_ms(seconds)
    # Almost every line carries one time, which float() takes as it is.
    try:
        seconds = float(value)
    except ValueError:
        return _summed_upstream_ms(value)
    return latency_ms(seconds) if 0.0 <= seconds < _INFINITY else None


def _summed_upstream_ms(value: str) -> int | None:
    """``upstream_ms()`` of a value that is not a single time: several, ``-`` or junk."""
    times = []
    for part in value.replace(":", ",").split(","):
        part = part.strip()
        if part == "-":
            continue
        try:
            seconds = float(part)
        except ValueError:
            return None
        if not 0.0 <= seconds < _INFINITY:
            return None
        times.append(latency_ms(seconds))
    return sum(times) if times else None


def parse_line(line: str | bytes) -> Request | None:
    """One log line as a Request, or None when it is not one (counted as unparsed).

    Needs status, request_time, upstream, uri and bytes, and a colour when upstream
    names one; numbers may be strings. upstream_time is read when there, but never makes
    a line unparsed (see ``upstream_ms()``); time and method are not read.
    The checks first try the types nginx writes, as this runs for every line.
    """
    try:
        entry = _decode(line) if type(line) is str else json.loads(line)
    except ValueError:
        return None
    if type(entry) is not dict:
        return None
    upstream = entry.get("upstream")
    uri = entry.get("uri")
    if type(upstream) is not str or type(uri) is not str:
        return None
    status = entry.get("status")
    if type(status) is not int:
        status = _whole_number(status)
    seconds = entry.get("request_time")
    if type(seconds) is not float or not 0.0 <= seconds < _INFINITY:
        seconds = _finite(seconds)
    sent = entry.get("bytes")
    if type(sent) is not int:
        sent = _whole_number(sent)
    if status is None or not 0 <= status <= MAX_STATUS:
        return None
    if seconds is None or seconds < 0 or sent is None or sent < 0:
        return None
    if upstream.strip() in NO_UPSTREAM:
        return Request("", False, status, latency_ms(seconds), uri, sent, None)
    colour = entry.get("colour")
    if type(colour) is not str or not colour.strip():
        return None
    upstream_time = upstream_ms(entry.get("upstream_time"))
    return Request(colour.strip(), True, status, latency_ms(seconds), uri, sent, upstream_time)


class RouteStats:
    """Requests, errors and the latency histogram of one route (or of a colour)."""

    __slots__ = ("errors", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency: dict[int, int] = {}

    def add(self, request: Request) -> None:
        self.requests += 1
        if request.status >= 500:
            self.errors += 1
        latency = self.latency
        latency[request.latency_ms] = latency.get(request.latency_ms, 0) + 1

    def merge(self, other: RouteStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for ms, count in other.latency.items():
            self.latency[ms] = self.latency.get(ms, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency_ms": histogram(self.latency),
        }


class ColourStats(RouteStats):
    """A colour's figures: those of RouteStats, plus statuses, bytes, the upstream time
    histogram, the requests without an upstream time, and its routes."""

    __slots__ = ("bytes", "no_upstream_time", "routes", "statuses", "upstream")

    def __init__(self) -> None:
        super().__init__()
        self.statuses: dict[int, int] = {}
        self.bytes = 0
        self.upstream: dict[int, int] = {}
        self.no_upstream_time = 0
        self.routes: dict[str, RouteStats] = {}

    def named_routes(self, patterns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each pattern's figures over the routes it matches, every route in the first
        pattern that matches it only, so the patterns' figures add up without overlap."""
        named = {pattern: RouteStats() for pattern in patterns}
        for uri, stats in self.routes.items():
            pattern = next((p for p in patterns if route_matches(uri, p)), None)
            if pattern is not None:
                named[pattern].merge(stats)
        return {pattern: stats.as_dict() for pattern, stats in named.items()}

    def add(self, request: Request) -> None:
        # RouteStats.add written out twice: this runs for every line.
        _colour, _routed, status, ms, uri, sent, upstream_time = request
        self.requests += 1
        self.bytes += sent
        statuses, latency = self.statuses, self.latency
        statuses[status] = statuses.get(status, 0) + 1
        latency[ms] = latency.get(ms, 0) + 1
        if upstream_time is None:
            self.no_upstream_time += 1
        else:
            upstream = self.upstream
            upstream[upstream_time] = upstream.get(upstream_time, 0) + 1
        route = self.routes.get(uri)
        if route is None:
            route = self.routes[uri] = RouteStats()
        route.requests += 1
        latency = route.latency
        latency[ms] = latency.get(ms, 0) + 1
        if status >= 500:
            self.errors += 1
            route.errors += 1

    def as_dict(self, max_routes: int, named_routes: Sequence[str] = ()) -> dict[str, Any]:
        result = {
            **super().as_dict(),
            "statuses": histogram(self.statuses),
            "bytes": self.bytes,
            "upstream_ms": histogram(self.upstream),
            "no_upstream_time": self.no_upstream_time,
            "routes": cap_routes(self.routes, max_routes),
        }
        if named_routes:
            result["named_routes"] = self.named_routes(named_routes)
        return result


def route_matches(uri: str, pattern: str) -> bool:
    """Whether ``uri`` is the route ``pattern`` names: the path itself, or any path under a
    prefix written with a final ``*`` (``/reports/*``)."""
    if pattern.endswith("*"):
        return uri.startswith(pattern[:-1])
    return uri == pattern


def validate_named_routes(patterns: Any) -> list[str]:
    if not patterns:
        return []
    found = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.startswith("/") or "*" in pattern[:-1]:
            raise NginxRequestsError(
                f"named_routes has {pattern!r}: give a path (/generate), or a prefix ending "
                "in * (/reports/*)"
            )
        found.append(pattern)
    if len(set(found)) != len(found):
        raise NginxRequestsError(f"named_routes lists a route twice: {found}")
    return found


def histogram(counts: Mapping[int, int]) -> dict[str, int]:
    """Counts by number, as string keys in numeric order (JSON keys are strings)."""
    return {str(key): counts[key] for key in sorted(counts)}


def cap_routes(routes: Mapping[str, RouteStats], max_routes: int) -> dict[str, dict[str, Any]]:
    """The ``max_routes`` busiest routes (most requests, then by name), the rest merged
    under ``other``, which a route of that very name joins."""
    ranked = sorted(routes, key=lambda uri: (-routes[uri].requests, uri))
    kept = {uri: routes[uri] for uri in ranked[:max_routes]}
    if len(ranked) > max_routes:
        other = RouteStats()
        for uri in [*ranked[max_routes:], *([OTHER_ROUTE] if OTHER_ROUTE in kept else [])]:
            other.merge(routes[uri])
        kept[OTHER_ROUTE] = other
    return {uri: stats.as_dict() for uri, stats in kept.items()}


class Tally:
    """Counts the lines of one window: per colour, and the ones that count for none."""

    def __init__(self, exclude_routes: Iterable[str] = ()) -> None:
        self.exclude = frozenset(exclude_routes)
        self.colours: dict[str, ColourStats] = {}
        self.lines = 0
        self.unparsed = 0
        self.excluded = 0
        self.unrouted = 0

    def add_line(self, line: bytes | str) -> None:
        self.lines += 1
        request = parse_line(line)
        if request is None:
            self.unparsed += 1
        else:
            self.add(request)

    def add_fragment(self) -> None:
        """A line cut short that will never be completed (the end of a rotated file)."""
        self.lines += 1
        self.unparsed += 1

    def add(self, request: Request) -> None:
        if request.uri in self.exclude:
            self.excluded += 1
        elif not request.routed:
            self.unrouted += 1
        else:
            stats = self.colours.get(request.colour)
            if stats is None:
                stats = self.colours[request.colour] = ColourStats()
            stats.add(request)

    def as_dict(self, max_routes: int, named_routes: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "colours": {
                colour: self.colours[colour].as_dict(max_routes, named_routes)
                for colour in sorted(self.colours)
            },
            "unrouted": self.unrouted,
            "excluded": self.excluded,
            "unparsed": self.unparsed,
            "lines": self.lines,
        }


def complete_lines(buffer: bytes) -> tuple[list[str], bytes]:
    """The complete lines of ``buffer`` as text, without their newlines, and the bytes
    after the last newline. Bytes that are not UTF-8 are replaced, so such a line still
    counts if its fields can be read."""
    end = buffer.rfind(b"\n")
    if end < 0:
        return [], buffer
    return buffer[:end].decode("utf-8", errors="replace").split("\n"), buffer[end + 1 :]
