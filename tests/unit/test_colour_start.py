"""colour_start: when a colour restarts, what it records, and why a release stops; the
module against a real HTTP server with systemctl and journalctl faked."""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import colour_start
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.colour_state import (
    config_checksum,
    restart_reason,
    unhealthy_message,
    version_mismatch_message,
)
from ansible.module_utils.smoke_routes import smoke_failure_message
from conftest import RunModule, serving


def test_the_config_checksum_covers_the_release_and_every_file_in_order() -> None:
    expected = hashlib.sha256(b"/r/2 aa missing bb").hexdigest()
    assert config_checksum("/r/2", ["aa", None, "bb"]) == expected
    assert config_checksum("/r/2", ["bb", None, "aa"]) != expected
    assert config_checksum("/r/3", ["aa", None, "bb"]) != expected


@pytest.mark.parametrize(
    ("link_changed", "recorded", "state", "reason"),
    [
        (True, "s\n", "active", "its link now points at the release"),
        (False, None, "active", "what it starts with (release, environment, files, unit) changed"),
        (False, "other\n", "active", "what it starts with"),
        (False, "s\n", "failed", "its unit was failed"),
        (False, "s\n", "", "its unit was inactive"),
        (False, "s\n", "active", ""),
    ],
)
def test_a_colour_restarts_only_when_what_it_runs_changed_or_it_is_down(
    link_changed: bool, recorded: str | None, state: str, reason: str
) -> None:
    got = restart_reason(link_changed, recorded, "s", state)
    assert got.startswith(reason) and bool(got) is bool(reason)


def test_the_stop_messages_name_the_host_the_colour_and_what_was_seen() -> None:
    record = {"health_status": -1, "health_error": "refused", "healthy": False}
    unhealthy = unhealthy_message(
        colour="green",
        service="shop",
        version="2.0",
        host="app1",
        record=record,
        waited_s=3.2,
        gave_up="shop@green.service has failed",
        health_path="/health",
        log_lines=["Traceback", "ImportError: flask"],
    )
    assert unhealthy.startswith("green colour (shop 2.0) on app1 is not healthy after 3.2 s:")
    assert "shop@green.service has failed (last answer: -1 refused)" in unhealthy
    assert "Traffic was not switched. Last log lines: Traceback | ImportError: flask" in unhealthy

    answers = [
        {"method": "GET", "path": "/", "expected": 200, "status": 200, "ok": True},
        {"method": "GET", "path": "/a", "expected": 200, "status": 500, "ok": False},
        {"method": "POST", "path": "/b", "expected": 201, "status": None, "ok": False,
         "error": "timed out"},
    ]  # fmt: skip
    assert smoke_failure_message("green", "app1", answers) == (
        "smoke probe failed on the green colour of app1: GET /a answered 500, expected 200; "
        "POST /b answered nothing (timed out), expected 201. Traffic was not switched."
    )
    assert smoke_failure_message("green", "app1", answers[:1]) == ""

    seen = [{"version": "1.0"}, {"version": "2.0"}]
    mismatch = version_mismatch_message("green", "app1", seen, "X-Version", "2.0")
    assert "with X-Version ['1.0', '2.0'], expected '2.0'" in mismatch
    assert version_mismatch_message("green", "app1", seen[1:], "X-Version", "2.0") == ""
    assert version_mismatch_message("green", "app1", seen, "", "2.0") == ""
    assert version_mismatch_message("green", "app1", [], "X-Version", "2.0") == ""


# The module.


@pytest.fixture
def service() -> Iterator[dict[str, Any]]:
    """An HTTP server standing in for the colour; ``state['version']`` is what it names."""
    state: dict[str, Any] = {"version": "2.0", "health": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = state["health"] if self.path == "/health" else 200
            broken = {"/missing": 404, "/api/projects": 500}
            self.send_response(broken.get(self.path, status))
            self.send_header("X-Bluegreen-Version", state["version"])
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as port:
        state["port"] = port
        yield state


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """systemctl and journalctl, faked: the commands run, and the unit's state."""
    fake: dict[str, Any] = {"commands": [], "state": "active", "restarts": 0}

    def run_command(self: AnsibleModule, args: list[str], **_: Any) -> tuple[int, str, str]:
        if args[1:2] == ["show"]:
            return 0, f"ActiveState={fake['state']}\nNRestarts={fake['restarts']}\n", ""
        fake["commands"].append(" ".join(args[1:]) if "systemctl" in args[0] else args[0])
        if args[0] == "journalctl":
            return 0, "Traceback\nImportError: flask\n", ""
        if args[1:2] == ["is-enabled"]:
            return 0, "enabled\n", ""
        if args[1:2] == ["restart"]:
            fake["state"] = "active"
        return 0, "", ""

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, **_: f"/bin/{name}")
    return fake


def arguments(tmp_path: Path, port: int, **changes: Any) -> dict[str, Any]:
    env = tmp_path / "green.env"
    if not env.exists():
        env.write_text("A=1\n")
    (tmp_path / "colours").mkdir(exist_ok=True)
    return {
        "name": "shop",
        "colour": "green",
        "version": "2.0",
        "release_dir": "/opt/shop/releases/2.0",
        "colours_dir": str(tmp_path / "colours"),
        "config_files": [str(env), str(tmp_path / "absent")],
        "ports": {"blue": 1, "green": port},
        "wait_healthy": 2,
        "interval": 0.05,
        "smoke": [{"path": "/"}],
        "host": "app1",
    } | changes


def test_starts_records_and_then_leaves_a_running_colour_alone(
    tmp_path: Path, run_module: RunModule, service: dict, systemd: dict
) -> None:
    args = arguments(tmp_path, service["port"])
    link = tmp_path / "colours" / "green"

    checked = run_module(colour_start.main, args, check_mode=True)
    assert (checked["changed"], checked["restarted"]) == (True, True)
    assert not link.is_symlink() and systemd["commands"] == []

    first = run_module(colour_start.main, args)
    assert first["restarted"] and first["reason"] == "its link now points at the release"
    assert str(link.readlink()) == "/opt/shop/releases/2.0"
    assert systemd["commands"] == ["daemon-reload", "is-enabled shop@green.service",
                                   "restart shop@green.service"]  # fmt: skip
    record = tmp_path / "colours" / ".green.config-sha256"
    assert record.read_text() == first["config_sha256"] + "\n"
    assert first["colours"]["green"]["healthy"] and first["smoke"]["green"][0]["ok"]

    systemd["commands"].clear()
    again = run_module(colour_start.main, args)
    assert (again["changed"], again["restarted"]) == (False, False), again
    assert "restart shop@green.service" not in systemd["commands"]

    (tmp_path / "green.env").write_text("A=2\n")
    changed = run_module(colour_start.main, args)
    assert changed["restarted"] and "what it starts with" in changed["reason"]
    assert record.read_text() == changed["config_sha256"] + "\n" != first["config_sha256"]


def test_an_unhealthy_colour_stops_the_release_with_its_log(
    tmp_path: Path, run_module: RunModule, service: dict, systemd: dict
) -> None:
    service["health"] = 503

    result = run_module(colour_start.main, arguments(tmp_path, service["port"], wait_healthy=0.2))

    assert result["failed"]
    assert "green colour (shop 2.0) on app1 is not healthy after" in result["msg"]
    assert "no 200 from /health (last answer: 503)" in result["msg"]
    assert "Last log lines: Traceback | ImportError: flask" in result["msg"]
    assert result["colours"]["green"]["healthy"] is False


def test_a_wrong_smoke_answer_or_version_stops_the_release(
    tmp_path: Path, run_module: RunModule, service: dict, systemd: dict
) -> None:
    smoke = run_module(
        colour_start.main, arguments(tmp_path, service["port"], smoke=[{"path": "/missing"}])
    )
    assert smoke["failed"] and "GET /missing answered 404, expected 200" in smoke["msg"]

    service["version"] = "1.0"
    version = run_module(colour_start.main, arguments(tmp_path, service["port"]))
    assert version["failed"]
    assert "X-Bluegreen-Version ['1.0'], expected '2.0'" in version["msg"], version["msg"]


TOKEN = "Bearer s3cr3t-t0ken-from-vault"
BODY = '{"name": "smoke", "password": "hunter2-from-vault"}'


def test_a_wrong_answer_stops_the_release_naming_the_headers_never_their_values(
    tmp_path: Path, run_module: RunModule, service: dict, systemd: dict
) -> None:
    route = {"path": "/api/projects", "method": "POST", "status": 201,
             "headers": {"Authorization": TOKEN, "Content-Type": "application/json"},
             "body": BODY}  # fmt: skip

    result = run_module(colour_start.main, arguments(tmp_path, service["port"], smoke=[route]))

    assert result["failed"] and result["check"] == "smoke"
    assert (
        "POST /api/projects answered 500, expected 201 [headers: Authorization (value hidden), "
        f"Content-Type (value hidden); body of {len(BODY)} bytes]. Traffic was not switched."
    ) in result["msg"]
    assert result["smoke"]["green"][0]["headers"] == ["Authorization", "Content-Type"]
    for secret in ("s3cr3t", "hunter2"):
        assert secret not in json.dumps(result)


def test_a_route_that_cannot_be_sent_changes_nothing(
    tmp_path: Path, run_module: RunModule, service: dict, systemd: dict
) -> None:
    route = {"path": "/api/projects", "method": "POST", "body": BODY, "json": {"a": 1}}

    result = run_module(colour_start.main, arguments(tmp_path, service["port"], smoke=[route]))

    assert result["failed"]
    assert result["msg"] == (
        "smoke[0] (POST /api/projects): sets both body and json; keep one (body is sent as is, "
        "json is sent JSON-encoded). Nothing was changed."
    )
    assert not (tmp_path / "colours" / "green").is_symlink()
    assert systemd["commands"] == []
