# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Reading a colour on its app host: its link, its systemd unit, its health endpoint and
smoke routes, and waiting for it to get healthy. The I/O colour_state and colour_start
share; the decisions are module_utils/colour_state.py's and module_utils/smoke_routes.py's."""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.colour_state import (
    colour_record,
    health_url,
    hopeless,
    unit_name,
)
from ansible.module_utils.smoke_routes import (
    MAX_BODY_BYTES,
    Reply,
    SmokeRoute,
    smoke_answer,
    smoke_routes,
)


@dataclass(frozen=True)
class Probe:
    """What to read of a service's colours, and how long to wait for them."""

    name: str
    ports: Mapping[str, Any]
    colours_dir: str
    health_path: str = "/health"
    timeout: float = 5.0
    wait_healthy: float = 0.0
    interval: float = 0.5
    max_restarts: int = 3
    restarts_baseline: Mapping[str, Any] = field(default_factory=dict)
    smoke: Sequence[SmokeRoute] = ()
    version_header: str = "X-Bluegreen-Version"

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **changes: Any) -> Probe:
        """The probe a module's parameters describe (colour_state's and colour_start's
        share these names), with ``changes`` over them. Raises SmokeRouteError, naming
        each route that cannot be sent and its fix."""
        names = [name for name in cls.__dataclass_fields__ if name in params]
        values = {name: params[name] for name in names} | changes
        values["smoke"] = tuple(smoke_routes(values.get("smoke") or [], "smoke"))
        return cls(**values)


def link_target(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def unit_state(module: Any, unit: str) -> tuple[str, int]:
    """ActiveState and NRestarts of a unit."""
    systemctl = module.get_bin_path("systemctl", required=True)
    _rc, out, _err = module.run_command(
        [systemctl, "show", "-p", "ActiveState", "-p", "NRestarts", unit]
    )
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    restarts = fields.get("NRestarts", "0")
    return fields.get("ActiveState", ""), int(restarts) if restarts.isdigit() else 0


def request(
    url: str, timeout: float, method: str = "GET", header: str | None = None
) -> tuple[int | None, str | None, str | None]:
    """Status, the value of `header`, and the error when nothing answered."""
    req = urllib.request.Request(url, method=method, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers.get(header) if header else None, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get(header) if header else None, None
    except (urllib.error.URLError, OSError) as exc:
        return None, None, str(getattr(exc, "reason", exc))


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, but takes the route's headers (their values may
    be secrets) to the same host only."""

    def __init__(self, route_headers: Sequence[str]) -> None:
        self.route_headers = route_headers

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            for name in self.route_headers:
                new.remove_header(name.capitalize())  # urllib keeps names capitalized
        return new


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Leaves a redirect unanswered, so it is judged itself (urllib raises it)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        return None


def _reply(response: Any, status: int, route: SmokeRoute, header: str | None) -> Reply:
    version = response.headers.get(header) if header else None
    if not route.reads_body:
        return Reply(status, version)
    try:
        body = response.read(MAX_BODY_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(status, version, error=str(exc) or type(exc).__name__)
    charset = response.headers.get_content_charset() or "utf-8"
    return Reply(status, version, body[:MAX_BODY_BYTES], len(body) > MAX_BODY_BYTES, None, charset)


def smoke_reply(url: str, route: SmokeRoute, timeout: float, header: str | None) -> Reply:
    """Send one smoke route; what came back (at most MAX_BODY_BYTES of the body, read only
    when the route judges it). Never raises."""
    redirects = _Redirects(list(route.headers)) if route.follow_redirects else _NoRedirects()
    request = urllib.request.Request(
        url,
        data=route.body,
        method=route.method,
        headers={"Connection": "close", **route.request_headers()},
    )
    try:
        with urllib.request.build_opener(redirects).open(request, timeout=timeout) as response:
            return _reply(response, response.status, route, header)
    except urllib.error.HTTPError as exc:
        try:
            return _reply(exc, exc.code, route, header)
        finally:
            exc.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        return Reply(None, error=str(getattr(exc, "reason", exc)) or type(exc).__name__)


def smoke_answers(probe: Probe, colour: str) -> list[dict]:
    port = int(probe.ports[colour])
    return [
        smoke_answer(
            route,
            smoke_reply(health_url(port, route.path), route, probe.timeout, probe.version_header),
        )
        for route in probe.smoke
    ]


def read_colours(module: Any, probe: Probe, colours: Sequence[str]) -> dict:
    found = {}
    for colour in colours:
        status, _version, error = request(
            health_url(int(probe.ports[colour]), probe.health_path), probe.timeout
        )
        state, restarts = unit_state(module, unit_name(probe.name, colour))
        found[colour] = colour_record(
            link_target(os.path.join(probe.colours_dir, colour)), state, status, error
        ) | {"restarts": restarts}
    return found


def wait_for_colours(module: Any, probe: Probe, colours: Sequence[str]) -> dict[str, Any]:
    """Read the colours until every one is healthy, one is hopeless (failed, or restarted
    ``max_restarts`` times since the baseline) or ``wait_healthy`` s passed; then ask the
    smoke routes of the healthy ones. ``{colours, smoke, waited_s, gave_up}``."""
    started = time.monotonic()
    deadline = started + max(probe.wait_healthy, 0)
    while True:
        found = read_colours(module, probe, colours)
        gave_up = hopeless(found, probe.name, probe.max_restarts, dict(probe.restarts_baseline))
        all_healthy = all(record["healthy"] for record in found.values())
        if all_healthy or gave_up or time.monotonic() >= deadline:
            break
        time.sleep(probe.interval)
    return {
        "colours": found,
        "smoke": {
            colour: smoke_answers(probe, colour) if record["healthy"] else []
            for colour, record in found.items()
        },
        "waited_s": round(time.monotonic() - started, 3),
        "gave_up": None if all_healthy else gave_up,
    }
