"""Pure logic of the synthetic_load module: the load step, its request plan, its summary.

The module sends the requests; everything that can be decided without a network is here
so that it can be tested without one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Methods that change nothing on a well-behaved service (RFC 9110, section 9.2.1).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# What a smoke route (module_utils/smoke_routes.py) may send besides its method and path.
# A load step sends none of it, and refuses a route that asks for it rather than send
# the request without it (a route that needs its token would measure its 401).
REQUEST_KEYS = ("headers", "body", "json")


class LoadError(Exception):
    """A load step that cannot be sent as given; the message says what to change."""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    expected: int

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class LoadStep:
    """How much traffic, to which servers and routes, for how long.

    rate > 0 is an open loop: requests leave on a fixed schedule whatever the answers
    take, at most `concurrency` in flight. rate == 0 is a closed loop: `concurrency`
    clients each send the next request as soon as the previous one is answered.
    """

    targets: tuple[str, ...]
    routes: tuple[Route, ...]
    rate: float
    concurrency: int
    duration: float
    timeout: float
    # The first seconds of the step warm the colour up (a new process's first answers are
    # slow: imports, connection pools): their statuses count, their times are not judged.
    warmup: float = 0.0

    @property
    def open_loop(self) -> bool:
        return self.rate > 0

    @property
    def unsafe(self) -> bool:
        return any(route.method not in SAFE_METHODS for route in self.routes)

    def planned_requests(self) -> int | None:
        """Requests the schedule sends (open loop); None when answers decide (closed loop)."""
        return math.floor(self.rate * self.duration) if self.open_loop else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "routes": [route.name for route in self.routes],
            "rate": self.rate,
            "concurrency": self.concurrency,
            "duration": self.duration,
            "timeout": self.timeout,
            "warmup": self.warmup,
            "planned_requests": self.planned_requests(),
        }


def _target(url: Any) -> str:
    text = str(url or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(
            f"target {url!r} is not an http(s) base URL; give each server as "
            "http://host:port (the routes' paths are appended to it)"
        )
    if parts.path or parts.query:
        raise LoadError(f"target {url!r} has a path; give the base URL only, routes add paths")
    return text


def _route(entry: Any, allow_unsafe: bool) -> Route:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, Mapping) or not str(entry.get("path") or "").startswith("/"):
        # The path only: the rest of a route may hold a secret (a smoke route's headers).
        shown = repr(entry.get("path")) if isinstance(entry, Mapping) else repr(entry)
        raise LoadError(
            f"route {shown} needs a path starting with '/', e.g. {{path: /notes?limit=1}}"
        )
    method = str(entry.get("method") or "GET").upper()
    if method not in SAFE_METHODS and not allow_unsafe:
        raise LoadError(
            f"route {method} {entry['path']} would change data on the service; synthetic "
            f"traffic sends only {', '.join(sorted(SAFE_METHODS))} unless allow_unsafe_methods "
            "is true"
        )
    sent = [key for key in REQUEST_KEYS if entry.get(key) is not None]
    if sent:
        raise LoadError(
            f"route {method} {entry['path']} sets {' and '.join(sent)}, which the load step "
            "does not send (it sends each route's method and path); leave the route out, or "
            "give headers for every request in the headers option, which hides their values"
        )
    try:
        expected = int(entry.get("status", 200))
    except (TypeError, ValueError) as exc:
        raise LoadError(
            f"route {entry['path']}: status {entry.get('status')!r} is no number"
        ) from exc
    return Route(method, str(entry["path"]), expected)


def route_secrets(routes: Any) -> set[str]:
    """The header values and bodies of smoke routes given as routes: the module hides them
    from its result, as they are refused anyway (`routes` cannot be no_log: it would hide
    every path)."""
    secrets: set[str] = set()
    for entry in routes if isinstance(routes, list) else []:
        if not isinstance(entry, Mapping):
            continue
        headers = entry.get("headers")
        if isinstance(headers, Mapping):
            secrets.update(str(value) for value in headers.values() if value)
        if isinstance(entry.get("body"), str) and entry["body"]:
            secrets.add(entry["body"])
    return secrets


def load_step(params: Mapping[str, Any]) -> LoadStep:
    """The validated load step of the module's parameters."""
    targets = tuple(_target(url) for url in params.get("targets") or [])
    if not targets:
        raise LoadError("targets is empty: name at least one server as http://host:port")
    routes = tuple(
        _route(entry, bool(params.get("allow_unsafe_methods")))
        for entry in params.get("routes") or []
    )
    if not routes:
        raise LoadError("routes is empty: name at least one route, e.g. [{path: /}]")
    rate = float(params.get("rate") or 0)
    concurrency = int(params.get("concurrency") or 0)
    duration = float(params.get("duration") or 0)
    timeout = float(params.get("timeout") or 0)
    warmup = float(params.get("warmup") or 0)
    if rate < 0:
        raise LoadError(
            f"rate {rate:g} is negative; give requests per second, or 0 for a closed loop"
        )
    if concurrency < 1:
        raise LoadError(f"concurrency {concurrency} must be at least 1")
    if duration <= 0:
        raise LoadError(f"duration {duration:g} must be a positive number of seconds")
    if timeout <= 0:
        raise LoadError(f"timeout {timeout:g} must be a positive number of seconds")
    if not 0 <= warmup < duration:
        raise LoadError(
            f"warmup {warmup:g} must be 0 or more seconds and shorter than duration {duration:g}"
        )
    return LoadStep(targets, routes, rate, concurrency, duration, timeout, warmup)


def request_cycle(step: LoadStep) -> Iterator[tuple[str, Route]]:
    """Every (target, route) pair in turn, forever: each server gets each route alike."""
    pairs = [(target, route) for route in step.routes for target in step.targets]
    while True:
        yield from pairs


def schedule(step: LoadStep) -> list[tuple[float, str, Route]]:
    """Open loop: when (seconds from the start) each request leaves, to which server and route."""
    planned = step.planned_requests() or 0
    cycle = request_cycle(step)
    return [(index / step.rate, *next(cycle)) for index in range(planned)]


@dataclass(frozen=True)
class Outcome:
    """One request: its answer (status None when none came) and how long it took."""

    target: str
    route: Route
    started: float
    seconds: float
    status: int | None
    error: str | None = None


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values; None without values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _counts(outcomes: Iterable[Outcome], timed_from: float = 0.0) -> dict[str, Any]:
    """Counts of `outcomes`; the latency histogram has the answers of requests started
    at `timed_from` or later (the warm-up's are not timed)."""
    mine = list(outcomes)
    return {
        "requests": len(mine),
        "unanswered": sum(o.status is None for o in mine),
        "unexpected": sum(o.status is not None and o.status != o.route.expected for o in mine),
        "statuses": {
            str(status): count
            for status, count in sorted(Counter(o.status for o in mine if o.status).items())
        },
        # Exact at 1 ms and mergeable by adding counts, like the load balancer's own log:
        # golden_signals (source lb) judges the answers from it.
        "latency_histogram_ms": {
            str(ms): count
            for ms, count in sorted(
                Counter(
                    round(o.seconds * 1000)
                    for o in mine
                    if o.status is not None and o.started >= timed_from
                ).items()
            )
        },
    }


def summarise(step: LoadStep, outcomes: Sequence[Outcome], started: float, ended: float) -> dict:
    """What the load step did, as the module returns it and the journal keeps it.

    Latency here is what the client saw; the judgement of the colour is the service's own
    metrics (golden_signals), which this summary only backs up.
    """
    timed_from = started + step.warmup
    warm = [o for o in outcomes if o.started < timed_from]
    seconds = sorted(
        o.seconds for o in outcomes if o.status is not None and o.started >= timed_from
    )
    elapsed = max(ended - started, 1e-9)
    return {
        **_counts(outcomes, timed_from),
        "warmup": {
            "seconds": step.warmup,
            "requests": len(warm),
            "latency_ms_max": _ms(
                max((o.seconds for o in warm if o.status is not None), default=None)
            ),
        },
        "errors": dict(sorted(Counter(o.error for o in outcomes if o.error).items())),
        "by_route": {
            route.name: _counts((o for o in outcomes if o.route == route), timed_from)
            for route in step.routes
        },
        "by_target": {
            target: _counts((o for o in outcomes if o.target == target), timed_from)
            for target in step.targets
        },
        "latency_ms": {
            "p50": _ms(percentile(seconds, 0.50)),
            "p95": _ms(percentile(seconds, 0.95)),
            "max": _ms(seconds[-1] if seconds else None),
        },
        "started_at": round(started, 3),
        "ended_at": round(ended, 3),
        "duration_s": round(elapsed, 3),
        "rate_achieved": round(len(outcomes) / elapsed, 2),
        "step": step.as_dict(),
    }
