"""Fault injection driven by the PEP 440 local version label of the installed package.

A faulty build is just another version (``2.0.1+crash``), so the release machinery
deploys it exactly like a good one and has to catch it with its own probes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ERRORS = re.compile(r"errors(\d{1,3})")
_SLOW = re.compile(r"slow(\d+)")
_AFTER = re.compile(r"after(\d+)")
_AFTER_REQUESTS = re.compile(r"after(\d+)req")
_CPU = re.compile(r"cpu(\d+)")
_LEAK = re.compile(r"leak(\d+)")
_LAG = re.compile(r"lag(\d+)")


@dataclass(frozen=True)
class Fault:
    """What the service does wrong; the default instance does nothing wrong."""

    crash: bool = False
    http500: bool = False
    error_rate: float = 0.0
    latency_seconds: float = 0.0
    # Seconds of uptime before errors and latency begin: a release that passes its smoke
    # probes and degrades under real traffic, as leaks and cold caches do.
    after_seconds: float = 0.0
    # Requests (health and metrics left out) answered well before errors and latency
    # begin: a release that passes its smoke probes and a pre-switch load step of fewer
    # requests, and degrades under real traffic, whatever the time the release took.
    after_requests: int = 0
    # CPU milliseconds burnt in each request: saturation that follows the traffic, so it
    # ends when traffic goes back to the other colour.
    cpu_ms_per_request: int = 0
    # Each request takes this share longer than it would (0.6: 60 % slower), however
    # fast it is: slower than the old colour, yet under any fixed latency threshold.
    lag: float = 0.0
    # Megabytes kept (never freed) by each request: memory that grows with the traffic.
    leak_mb_per_request: int = 0
    # Each request logs an exception with its traceback (its message holds the database
    # URL, password and all) and is answered as usual (200).
    tracebacks: bool = False

    @property
    def active(self) -> bool:
        return self != Fault()

    def describe(self) -> str:
        parts = []
        if self.crash:
            parts.append("crash at start")
        if self.http500:
            parts.append("HTTP 500 on every route but /health and /metrics")
        if self.error_rate:
            parts.append(f"HTTP 500 on {self.error_rate:.0%} of requests")
        if self.latency_seconds:
            parts.append(f"{self.latency_seconds:g}s extra latency")
        if self.cpu_ms_per_request:
            parts.append(f"{self.cpu_ms_per_request} ms of CPU burnt per request")
        if self.lag:
            parts.append(f"every request {self.lag:.0%} slower")
        if self.leak_mb_per_request:
            parts.append(f"{self.leak_mb_per_request} MB kept per request")
        if self.tracebacks:
            parts.append("a logged traceback per request, answered 200")
        if self.after_seconds and parts:
            parts.append(f"from {self.after_seconds:g}s after start")
        if self.after_requests and parts:
            parts.append(f"after {self.after_requests} requests")
        return ", ".join(parts) or "none"


def local_label(version: str) -> str:
    """The local part of a version (after ``+``), lower-cased; empty when there is none."""
    _, _, label = version.partition("+")
    return label.strip().lower()


def fault_from_version(version: str) -> Fault:
    """Parse the fault that a version's local label asks for.

    Segments of the label (separated by ``.``, ``-`` or ``_`` as PEP 440 allows) combine:
    ``2.0.3+slow1500.errors30`` is slow and flaky; ``after8`` delays the fault by 8 s of
    uptime, ``after200req`` by 200 requests; ``cpu40`` burns 40 ms of CPU in each
    request, ``leak2`` keeps 2 MB per request, ``lag60`` makes every request 60 %
    slower and ``tracebacks`` logs a traceback in each request while answering it.
    Unknown segments are ignored so that ordinary local labels (``+ubuntu1``) change
    nothing.
    """
    crash = http500 = False
    error_rate = latency = after = 0.0
    after_requests = cpu_ms = leak_mb = 0
    tracebacks = False
    lag = 0.0
    for segment in re.split(r"[._-]", local_label(version)):
        if segment == "crash":
            crash = True
        elif segment == "http500":
            http500 = True
        elif match := _ERRORS.fullmatch(segment):
            error_rate = min(int(match.group(1)), 100) / 100
        elif match := _SLOW.fullmatch(segment):
            latency = int(match.group(1)) / 1000
        elif segment == "tracebacks":
            tracebacks = True
        elif match := _CPU.fullmatch(segment):
            cpu_ms = int(match.group(1))
        elif match := _LAG.fullmatch(segment):
            lag = int(match.group(1)) / 100
        elif match := _LEAK.fullmatch(segment):
            leak_mb = int(match.group(1))
        elif match := _AFTER.fullmatch(segment):
            after = float(match.group(1))
        elif match := _AFTER_REQUESTS.fullmatch(segment):
            after_requests = int(match.group(1))
    return Fault(
        crash=crash,
        http500=http500,
        error_rate=error_rate,
        latency_seconds=latency,
        after_seconds=after,
        after_requests=after_requests,
        cpu_ms_per_request=cpu_ms,
        leak_mb_per_request=leak_mb,
        lag=lag,
        tracebacks=tracebacks,
    )
