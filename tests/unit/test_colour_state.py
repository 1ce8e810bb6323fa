"""colour_state: what a colour runs, and when waiting for its health is pointless."""

from __future__ import annotations

import http.server
from collections.abc import Iterator

import colour_state
import pytest
from ansible.module_utils import colour_probe
from ansible.module_utils.colour_state import (
    colour_record,
    health_url,
    hopeless,
    invalid_options,
    release_version,
)
from conftest import serving


def test_release_version_is_the_last_path_component_of_the_link() -> None:
    assert release_version("/opt/app/releases/2.0.1+crash") == "2.0.1+crash"
    assert release_version("/opt/app/releases/2.0.0/") == "2.0.0"
    assert release_version(None) is None


def test_health_url_probes_loopback_at_the_colour_port() -> None:
    assert health_url(8002, "health") == "http://127.0.0.1:8002/health"


def test_only_a_200_is_healthy() -> None:
    assert colour_record("/r/1.0.0", "active", 200, None)["healthy"]
    assert not colour_record("/r/1.0.0", "active", 503, None)["healthy"]
    unanswered = colour_record(None, "", None, "refused")
    assert unanswered == {
        "version": None,
        "release_dir": None,
        "state": "inactive",
        "health_status": -1,
        "health_error": "refused",
        "healthy": False,
    }


def test_waiting_is_hopeless_for_a_failed_or_crash_looping_unit() -> None:
    failed = {"green": colour_record(None, "failed", None, "refused")}
    assert hopeless(failed, "app", 3) == "app@green.service has failed"
    looping = {"green": colour_record(None, "activating", None, "refused") | {"restarts": 38}}
    assert hopeless(looping, "app", 3, {"green": 35}) == (
        "app@green.service crashed and was restarted 3 times"
    )
    assert hopeless(looping, "app", 3, {"green": 36}) is None
    healthy = {"green": colour_record("/r/2", "active", 200, None) | {"restarts": 99}}
    assert hopeless(healthy, "app", 3) is None


def test_unknown_colour_or_missing_port_is_named() -> None:
    assert "unknown colour(s) red" in invalid_options(["red"], {"red": 1})
    assert "no port for colour(s) green" in invalid_options(["green"], {"blue": 1})
    assert invalid_options(["blue"], {"blue": 8001}) is None


@pytest.fixture
def health_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as port:
        yield port


def test_module_reads_link_unit_and_health(run_module, tmp_path, health_server, monkeypatch):
    (tmp_path / "blue").symlink_to("/opt/app/releases/1.0.0")
    monkeypatch.setattr(colour_probe, "unit_state", lambda module, unit: ("active", 2))

    result = run_module(
        colour_state.main,
        {
            "name": "app",
            "colours": ["blue", "green"],
            "ports": {"blue": health_server, "green": 1},
            "colours_dir": str(tmp_path),
        },
    )

    assert result["changed"] is False
    assert result["colours"]["blue"] | {} == {
        "version": "1.0.0",
        "release_dir": "/opt/app/releases/1.0.0",
        "state": "active",
        "health_status": 200,
        "health_error": None,
        "healthy": True,
        "restarts": 2,
    }
    assert result["colours"]["green"]["version"] is None
    assert result["colours"]["green"]["healthy"] is False


def test_module_stops_waiting_for_a_crash_looping_colour(run_module, tmp_path, monkeypatch):
    restarts = iter(range(10, 100))
    monkeypatch.setattr(
        colour_probe, "unit_state", lambda module, unit: ("activating", next(restarts))
    )

    result = run_module(
        colour_state.main,
        {
            "name": "app",
            "colours": ["green"],
            "ports": {"green": 1},
            "colours_dir": str(tmp_path),
            "wait_healthy": 60,
            "interval": 0.01,
            "max_restarts": 3,
            "restarts_baseline": {"green": 10},
        },
    )

    assert result["gave_up"] == "app@green.service crashed and was restarted 3 times"
    assert result["waited_s"] < 60


def test_module_refuses_a_colour_without_a_port(run_module, tmp_path) -> None:
    result = run_module(
        colour_state.main,
        {"name": "app", "colours": ["green"], "ports": {"blue": 1}, "colours_dir": str(tmp_path)},
    )
    assert result["failed"]
    assert "no port for colour(s) green" in result["msg"]


def test_smoke_routes_are_asked_once_healthy_and_judged(
    run_module, tmp_path, health_server, monkeypatch
):
    monkeypatch.setattr(colour_probe, "unit_state", lambda module, unit: ("active", 0))

    result = run_module(
        colour_state.main,
        {
            "name": "app",
            "colours": ["blue"],
            "ports": {"blue": health_server},
            "colours_dir": str(tmp_path),
            "smoke": [{"path": "/health"}, {"path": "/missing", "status": 200}],
        },
    )

    answers = result["smoke"]["blue"]
    assert [(a["path"], a["status"], a["ok"]) for a in answers] == [
        ("/health", 200, True),
        ("/missing", 404, False),
    ]
