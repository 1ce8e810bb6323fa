# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

"""A service's declared dependencies and what a probe of each answered: pure logic.

A team declares what its service needs besides itself (``bluegreen_service_dependencies``):
its database, a cache, an HTTP API, any TCP service. The dependency_probe module probes
each from an app host; the analysis probes them from both colours' hosts in every window,
so a dependency the new colour cannot reach is told apart from one that is down for
everyone. The declarations are checked here (the inventory check's filter and the module
use the same rules) and each protocol's answer is judged here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("tcp", "postgresql", "redis", "http")
KEYS = {"name", "timeout", *KINDS}
DEFAULT_TIMEOUT = 3.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# PostgreSQL's SSLRequest: length 8, then the request code 80877103. Every PostgreSQL
# server answers it with one byte, S or N, before any authentication.
POSTGRESQL_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
REDIS_PING = b"PING\r\n"


class DependencyError(Exception):
    """A declaration the module cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class Dependency:
    name: str
    kind: str
    target: str
    host: str
    port: int
    timeout: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "target": self.target}


def host_port(text: str, default_port: int | None = None) -> tuple[str, int] | None:
    """('db1', 5432) from 'db1:5432' (or '[::1]:5432'); None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            return None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if not host or any(c.isspace() for c in host) or "/" in host:
        return None
    if not port_text:
        return (host, default_port) if default_port else None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379}


def _where(label: str, entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return f"{label} ({name})" if isinstance(name, str) and name else label


def _entry_problems(label: str, entry: Any) -> list[str]:
    if not isinstance(entry, Mapping):
        return [f"{label} must be a mapping such as {{name: cache, redis: 'cache1:6379'}}"]
    where = _where(label, entry)
    problems = [
        f"{where} has the key {key!r}; a dependency takes name, one of "
        f"{', '.join(KINDS)}, and timeout"
        for key in entry
        if key not in KEYS
    ]
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append(
            f"{where} needs a name of letters, digits, '.', '_' or '-' (e.g. cache), got {name!r}"
        )
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        problems.append(
            f"{where} must name exactly one of {', '.join(KINDS)} "
            f"(it names {', '.join(kinds) or 'none'})"
        )
    for kind in kinds:
        value = entry[kind]
        if kind == "http":
            parts = urlsplit(value) if isinstance(value, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(
                    f"{where}.http must be a full http:// or https:// URL, got {value!r}"
                )
        elif not isinstance(value, str) or host_port(value, DEFAULT_PORTS.get(kind)) is None:
            example = (
                "host:port" if kind == "tcp" else f"host or host:port (port {DEFAULT_PORTS[kind]})"
            )
            problems.append(f"{where}.{kind} must be {example}, got {value!r}")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        problems.append(f"{where}.timeout must be seconds above 0, at most 60, got {timeout!r}")
    return problems


def dependency_problems(raw: Any, name: str = "dependencies") -> list[str]:
    """One message per problem of the declarations in ``raw`` (the variable ``name``)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        return [f"{name} must be a list of dependencies, e.g. [{{name: db, postgresql: 'db1'}}]"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        label = f"{name}[{index}]"
        problems += _entry_problems(label, entry)
        dep_name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(dep_name, str):
            if dep_name in seen:
                problems.append(f"{label} repeats the name {dep_name!r}: each name once")
            seen.add(dep_name)
    return problems


def dependencies_from(raw: Any, name: str = "dependencies") -> list[Dependency]:
    problems = dependency_problems(raw, name)
    if problems:
        raise DependencyError("; ".join(problems))
    found = []
    for entry in raw or []:
        kind = next(k for k in KINDS if k in entry)
        target = entry[kind]
        if kind == "http":
            parts = urlsplit(target)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
        else:
            host, port = host_port(target, DEFAULT_PORTS.get(kind))  # type: ignore[misc]
        found.append(
            Dependency(
                entry["name"],
                kind,
                target,
                host,
                port,
                float(entry.get("timeout", DEFAULT_TIMEOUT)),
            )
        )
    return found


def postgresql_answered(data: bytes) -> str | None:
    """Why an answer to the SSLRequest is not PostgreSQL's, or None when it is."""
    # Exactly one byte: an SSH banner also starts with S.
    if data in (b"S", b"N"):
        return None
    if not data:
        return "the server closed the connection without answering PostgreSQL's SSLRequest"
    return f"the server answered {data[:16]!r}, not PostgreSQL's S or N"


def redis_answered(data: bytes) -> str | None:
    """Why an answer to PING is not Redis's, or None when it is (an error such as
    NOAUTH is an answer: the server is up, its credentials are the service's matter)."""
    if data.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS")):
        return None
    if not data:
        return "the server closed the connection without answering PING"
    return f"the server answered {data[:16]!r}, not Redis's +PONG"


def http_answered(status: int) -> str | None:
    """Why an HTTP answer means the dependency is down, or None: a server error (5xx) is
    down; any other status is an answer from a server that is up."""
    if status >= 500:
        return f"it answered HTTP {status}"
    return None


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str
    target: str
    ok: bool
    error: str | None
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "ok": self.ok,
            "error": self.error,
            "ms": round(self.ms, 1),
        }


def _failures(results: Mapping[str, Any], hosts: Any) -> dict[str, dict[str, str]]:
    """{dependency: {host: error}} of the probes that failed on `hosts`."""
    failed: dict[str, dict[str, str]] = {}
    for host in hosts:
        for probe in (results.get(host) or {}).get("probes") or []:
            if isinstance(probe, Mapping) and probe.get("ok") is False:
                failed.setdefault(str(probe.get("name")), {})[host] = str(probe.get("error"))
    return failed


def _reached(results: Mapping[str, Any], hosts: Any, name: str) -> list[str]:
    return [
        host
        for host in hosts
        for probe in (results.get(host) or {}).get("probes") or []
        if isinstance(probe, Mapping) and probe.get("name") == name and probe.get("ok") is True
    ]


def preflight_refusal(
    results: Mapping[str, Any], idle_hosts: Any, live_hosts: Any, idle_colour: str
) -> str:
    """Why a release stops before anything changes ('' when it does not): a dependency a
    host of the idle colour cannot reach while a host of the live colour can. The new
    colour would be deployed only to fail there; one down for every host is not refused
    (nothing the release does fixes it, and the analysis says so)."""
    idle = list(idle_hosts)
    live = [h for h in live_hosts if h not in idle]
    reasons = []
    for name, errors in _failures(results, idle).items():
        reached = _reached(results, live, name)
        if reached:
            said = ", ".join(f"{host}: {error}" for host, error in errors.items())
            reasons.append(
                f"{name} does not answer from the {idle_colour} colour's hosts ({said}) "
                f"while {', '.join(reached)} of the live colour reach it"
            )
    if not reasons:
        return ""
    return (
        "; ".join(reasons) + ": the new colour would fail there. Fix the network or the name "
        "resolution of those hosts, or bluegreen_service_dependencies; nothing was changed"
    )
