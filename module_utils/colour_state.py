"""Pure decisions of the colour_state module: what a colour runs and whether it is healthy."""

from __future__ import annotations

import os

COLOURS = ("blue", "green")


def release_version(link_target: str | None) -> str | None:
    """The version a colour runs, from the target of its link (.../releases/<version>)."""
    if not link_target:
        return None
    return os.path.basename(os.path.normpath(link_target)) or None


def unit_name(service: str, colour: str) -> str:
    return f"{service}@{colour}.service"


def health_url(port: int, path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    return f"http://127.0.0.1:{port}{path}"


def colour_record(
    link_target: str | None, unit_state: str, health_status: int | None, health_error: str | None
) -> dict:
    """What one colour runs, as the release, rollback and status playbooks read it."""
    return {
        "version": release_version(link_target),
        "release_dir": link_target,
        "state": unit_state or "inactive",
        "health_status": health_status if health_status is not None else -1,
        "health_error": health_error,
        "healthy": health_status == 200,
    }


def invalid_options(colours: list[str], ports: dict) -> str | None:
    """A message naming what is wrong with the options, or None."""
    unknown = [colour for colour in colours if colour not in COLOURS]
    if unknown:
        return f"unknown colour(s) {', '.join(unknown)}; colours are blue and green"
    missing = [colour for colour in colours if colour not in ports]
    if missing:
        return f"no port for colour(s) {', '.join(missing)}; set bluegreen_service_ports"
    return None


def hopeless(
    colours: dict, service: str, max_restarts: int, baseline: dict | None = None
) -> str | None:
    """Why waiting for health is pointless (a failed or crash-looping unit), or None."""
    for colour, record in colours.items():
        if record["healthy"]:
            continue
        unit = unit_name(service, colour)
        if record["state"] == "failed":
            return f"{unit} has failed"
        restarts = record.get("restarts", 0) - int((baseline or {}).get(colour, 0))
        if restarts >= max_restarts:
            return f"{unit} crashed and was restarted {restarts} times"
    return None


def smoke_answer(
    route: dict, method: str, status: int | None, version: str | None, error: str | None
) -> dict:
    """One smoke route's answer, judged against the status it should have."""
    expected = int(route.get("status", 200))
    return {
        "method": method,
        "path": str(route["path"]),
        "expected": expected,
        "status": status,
        "version": version,
        "ok": status == expected,
        "error": error,
    }
