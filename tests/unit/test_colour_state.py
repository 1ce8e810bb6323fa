"""colour_state: what a colour runs, and when waiting for its health is pointless."""

from __future__ import annotations

import http.server
import json
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


# Smoke routes with headers, bodies and expectations, against a real server.

TOKEN = "Bearer s3cr3t-t0ken-from-vault"
STATUS = {"status": "ok", "data": [{"id": 1}]}


@pytest.fixture
def api_server() -> Iterator[dict]:
    """A service whose API needs the token; ``state['seen']`` holds every request it got
    (method, path, headers, body)."""
    state: dict = {"seen": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state["seen"].append((self.command, self.path, dict(self.headers), body))
            authorized = self.headers.get("Authorization") == TOKEN
            if self.path == "/health":
                self.answer(200)
            elif self.path == "/api/status":
                self.answer(200, json.dumps(STATUS).encode()) if authorized else self.answer(401)
            elif self.path == "/api/projects" and self.command == "POST":
                typed = self.headers.get("Content-Type") == "application/json"
                ok = authorized and typed and json.loads(body) == {"name": "smoke"}
                self.answer(201 if ok else 400)
            elif self.path == "/text":
                self.answer(200, b"all ok here", Content_Type="text/plain; charset=utf-8")
            elif self.path == "/html":
                self.answer(200, b"<html>ok</html>")
            elif self.path == "/big":
                self.answer(200, b"a" * (2 * 1024 * 1024) + b"needle")
            elif self.path == "/redirect":
                self.answer(302, Location="/api/status")
            elif self.path == "/away":
                self.answer(302, Location=f"http://localhost:{state['port']}/api/status")
            else:
                self.answer(404)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as port:
        state["port"] = port
        yield state


def probe(run_module, tmp_path, port: int, smoke: list) -> dict:
    return run_module(
        colour_state.main,
        {"name": "app", "colours": ["blue"], "ports": {"blue": port},
         "colours_dir": str(tmp_path), "smoke": smoke},
    )  # fmt: skip


def test_smoke_routes_send_headers_and_json_and_judge_the_answers_body(
    run_module, tmp_path, api_server, monkeypatch
):
    monkeypatch.setattr(colour_probe, "unit_state", lambda module, unit: ("active", 0))
    auth = {"Authorization": TOKEN}

    result = probe(
        run_module,
        tmp_path,
        api_server["port"],
        [
            {"path": "/api/projects", "method": "POST", "headers": auth,
             "json": {"name": "smoke"}, "status": 201},
            {"path": "/api/status", "headers": auth,
             "expect_json": {"status": "ok", "data.0.id": 1}},
            {"path": "/api/status", "headers": auth,
             "expect_json": {"data.0.id": 2, "data.1.id": 1}},
            {"path": "/api/status", "expect_json": {"status": "ok"}},
            {"path": "/text", "expect_text": "ok"},
            {"path": "/text", "expect_text": "broken"},
            {"path": "/html", "expect_json": {"status": "ok"}},
            {"path": "/big", "expect_text": "needle"},
            {"path": "/health"},
        ],
    )  # fmt: skip

    assert [answer["problem"] for answer in result["smoke"]["blue"]] == [
        "",
        "",
        "GET /api/status answered 200 but data.0.id is 1, expected 2 and data.1.id is missing",
        "GET /api/status answered 401, expected 200",
        "",
        "GET /text answered 200 but its body does not contain 'broken'",
        "GET /html answered 200 but its body is not JSON",
        "GET /big answered 200 but its body does not contain 'needle' in its first 1 MiB",
        "",
    ]
    post = next(seen for seen in api_server["seen"] if seen[0] == "POST")
    assert post[2]["Authorization"] == TOKEN
    assert post[2]["Content-Type"] == "application/json"
    assert json.loads(post[3]) == {"name": "smoke"}
    sent = result["smoke"]["blue"][0]
    assert (sent["headers"], sent["body_bytes"]) == (["Authorization"], len(post[3]))
    assert "s3cr3t" not in json.dumps(result)  # nor in the task's echoed arguments


def test_redirects_are_followed_with_the_headers_to_the_same_host_only(
    run_module, tmp_path, api_server, monkeypatch
):
    monkeypatch.setattr(colour_probe, "unit_state", lambda module, unit: ("active", 0))
    auth = {"Authorization": TOKEN}

    result = probe(
        run_module,
        tmp_path,
        api_server["port"],
        [
            {"path": "/redirect", "headers": auth, "expect_json": {"status": "ok"}},
            {"path": "/redirect", "headers": auth, "follow_redirects": False, "status": 302},
            {"path": "/away", "headers": auth, "status": 401},
        ],
    )

    assert [(a["status"], a["ok"]) for a in result["smoke"]["blue"]] == [
        (200, True),
        (302, True),
        (401, True),
    ]
    followed = [seen[2].get("Authorization") for seen in api_server["seen"][-4:]]
    assert followed == [TOKEN, TOKEN, TOKEN, None]


def test_a_route_that_cannot_be_sent_fails_before_anything_is_probed(
    run_module, tmp_path, api_server
):
    bad = probe(
        run_module,
        tmp_path,
        api_server["port"],
        [{"path": "/ok"}, {"path": "health", "headers": {"Authorization": TOKEN + "\n"}}],
    )

    assert bad["failed"]
    assert bad["msg"].startswith("smoke[1] (GET health): path must start with '/'; write /health")
    assert "the value of header Authorization contains a line break" in bad["msg"]
    assert bad["msg"].endswith("Nothing was probed.")
    assert "s3cr3t" not in json.dumps(bad)
    assert api_server["seen"] == []

    unknown = probe(run_module, tmp_path, api_server["port"], [{"path": "/", "expect_txt": "x"}])
    assert unknown["failed"] and "smoke.expect_txt" in unknown["msg"]
    assert api_server["seen"] == []
