"""Pure decisions of the colour_state module: what a colour runs and whether it is healthy."""

from __future__ import annotations

import hashlib
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


def config_checksum(release_dir: str, checksums: list[str | None]) -> str:
    """What a colour starts with, as one SHA-256: its release directory and the checksum
    of each configuration file ('missing' for an absent one), in order."""
    text = " ".join([release_dir, *(checksum or "missing" for checksum in checksums)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def restart_reason(
    link_changed: bool, recorded: str | None, config_sha256: str, active_state: str
) -> str:
    """Why the colour's unit is (re)started ('' when it runs what it should already). A
    render's own `changed` is not enough: an earlier play of the same release (the SQLite
    migration plan) may have written the file first, so the colour restarts whenever what
    it would start with differs from what it was started with."""
    if link_changed:
        return "its link now points at the release"
    if (recorded or "").strip() != config_sha256:
        return "what it starts with (release, environment, files, unit) changed"
    if active_state != "active":
        return f"its unit was {active_state or 'inactive'}"
    return ""


def unhealthy_message(
    *,
    colour: str,
    service: str,
    version: str,
    host: str,
    record: dict,
    waited_s: float,
    gave_up: str | None,
    health_path: str,
    log_lines: list[str],
) -> str:
    """Why the release stops: the colour did not get healthy (with its last log lines)."""
    error = f" {record['health_error']}" if record.get("health_error") else ""
    return (
        f"{colour} colour ({service} {version}) on {host} is not healthy after {waited_s} s: "
        f"{gave_up or 'no 200 from ' + health_path} (last answer: "
        f"{record.get('health_status')}{error}). Traffic was not switched. Last log lines: "
        + " | ".join(log_lines)
    )


def version_mismatch_message(
    colour: str, host: str, answers: list[dict], header: str, version: str
) -> str:
    """Why the release stops: the smoke routes named another version ('' when they all
    named this one, or there were no routes or no header to read)."""
    if not answers or not header:
        return ""
    seen = list(dict.fromkeys(answer["version"] for answer in answers))
    if seen == [version]:
        return ""
    return (
        f"the {colour} colour on {host} answered the smoke routes with {header} {seen}, "
        f"expected '{version}'; the service must name its version in that header."
    )
