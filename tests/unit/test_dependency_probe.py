"""dependency_probe: the declarations checked, and each protocol probed against real
servers on 127.0.0.1 (a PostgreSQL-shaped and a Redis-shaped answer, an HTTP server, a
closed port)."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dependency_probe
import pytest
from ansible.module_utils.dependency_probe import (
    DependencyError,
    Probe,
    dependencies_from,
    dependency_problems,
    host_port,
    http_answered,
    postgresql_answered,
    preflight_refusal,
    redis_answered,
)
from conftest import serving


@pytest.fixture
def answering() -> Iterator[Callable[[bytes], int]]:
    """A TCP server on 127.0.0.1 that reads once and answers `reply`; yields its port."""
    servers: list[socket.socket] = []

    def start(reply: bytes) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(64)
                    conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return server.getsockname()[1]

    yield start
    for server in servers:
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(**entry: object) -> Probe:
    return dependency_probe.probe(dependencies_from([{"name": "dep", **entry}])[0])


class TestDeclarations:
    def test_good_declarations_have_no_problems(self) -> None:
        good = [
            {"name": "db", "postgresql": "db1"},
            {"name": "cache", "redis": "cache1:6380", "timeout": 1},
            {"name": "api", "http": "https://api.internal/health"},
            {"name": "smtp", "tcp": "[::1]:25"},
        ]
        assert dependency_problems(good) == []
        found = dependencies_from(good)
        assert [(d.host, d.port) for d in found] == [
            ("db1", 5432),
            ("cache1", 6380),
            ("api.internal", 443),
            ("::1", 25),
        ]

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ({"name": "x", "tcp": "db1"}, "deps[0] (x).tcp must be host:port"),
            ({"name": "x", "http": "api/health"}, "full http:// or https:// URL"),
            ({"name": "x"}, "exactly one of tcp, postgresql, redis, http (it names none)"),
            ({"name": "x", "tcp": "a:1", "redis": "b"}, "(it names tcp, redis)"),
            ({"name": "x y", "tcp": "a:1"}, "needs a name of letters"),
            ({"name": "x", "tcp": "a:1", "port": 2}, "has the key 'port'"),
            ({"name": "x", "tcp": "a:1", "timeout": 0}, "timeout must be seconds above 0"),
            ({"name": "x", "postgresql": "db1:99999"}, "host or host:port (port 5432)"),
        ],
    )
    def test_each_problem_names_the_entry_and_the_fix(self, entry: dict, message: str) -> None:
        problems = dependency_problems([entry], "deps")
        assert any(message in p for p in problems), problems
        with pytest.raises(DependencyError):
            dependencies_from([entry], "deps")

    def test_a_name_twice_is_refused(self) -> None:
        twice = [{"name": "db", "tcp": "a:1"}, {"name": "db", "tcp": "b:1"}]
        assert dependency_problems(twice) == [
            "dependencies[1] repeats the name 'db': each name once"
        ]

    def test_host_port(self) -> None:
        assert host_port("db1:5432") == ("db1", 5432)
        assert host_port("db1", 6379) == ("db1", 6379)
        assert host_port("db1") is None
        assert host_port("db1:0") is None


class TestAnswers:
    def test_protocol_answers(self) -> None:
        assert postgresql_answered(b"N") is None
        assert postgresql_answered(b"") is not None
        assert "not PostgreSQL's" in (postgresql_answered(b"HTTP/1.1 400") or "")
        assert redis_answered(b"+PONG\r\n") is None
        assert redis_answered(b"-NOAUTH Authentication required.\r\n") is None
        assert redis_answered(b"") is not None
        assert http_answered(404) is None
        assert http_answered(503) == "it answered HTTP 503"


class TestProbes:
    def test_postgresql_answers_the_ssl_request(self, answering) -> None:
        port = answering(b"N")
        assert run(postgresql=f"127.0.0.1:{port}").ok

    def test_something_else_on_the_postgresql_port_is_not_postgresql(self, answering) -> None:
        port = answering(b"SSH-2.0-OpenSSH\r\n")
        found = run(postgresql=f"127.0.0.1:{port}")
        assert not found.ok and "not PostgreSQL's S or N" in (found.error or "")

    def test_redis_answers_ping(self, answering) -> None:
        assert run(redis=f"127.0.0.1:{answering(b'+PONG' + bytes([13, 10]))}").ok

    def test_a_closed_port_is_refused(self) -> None:
        found = run(tcp=f"127.0.0.1:{closed_port()}", timeout=1)
        assert (found.ok, found.error) == (False, "connection refused")

    @pytest.mark.parametrize(("status", "error"), [(404, None), (503, "it answered HTTP 503")])
    def test_http_below_500_is_up_and_5xx_is_down(self, status: int, error: str | None) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        with serving(Handler) as port:
            found = run(http=f"http://127.0.0.1:{port}/health")
        assert (found.ok, found.error) == (error is None, error)

    def test_a_name_that_does_not_resolve(self) -> None:
        found = run(tcp="no-such-host.invalid:80", timeout=1)
        assert not found.ok and "does not resolve" in (found.error or "")


class TestPreflight:
    def results(self, **hosts: str | None) -> dict:
        return {
            host: {"probes": [{"name": "catalog", "ok": error is None, "error": error}]}
            for host, error in hosts.items()
        }

    def test_the_idle_colour_alone_failing_is_refused_naming_hosts(self) -> None:
        results = self.results(**{"app-green": "connection refused", "app-blue": None})

        refusal = preflight_refusal(results, ["app-green"], ["app-blue"], "green")
        assert refusal.startswith(
            "catalog does not answer from the green colour's hosts (app-green: connection "
            "refused) while app-blue of the live colour reach it"
        )
        assert refusal.endswith("nothing was changed")

    def test_down_for_every_host_or_one_host_for_both_colours_is_not_refused(self) -> None:
        down = self.results(**{"app-green": "refused", "app-blue": "refused"})
        shared = self.results(single1="refused")

        assert preflight_refusal(down, ["app-green"], ["app-blue"], "green") == ""
        assert preflight_refusal(shared, ["single1"], ["single1"], "green") == ""
        assert preflight_refusal({}, ["app-green"], ["app-blue"], "green") == ""


def plugin_filters(name: str) -> dict:
    """The filters of filter_plugins/<name>.py, loaded as Ansible loads them."""
    path = Path(__file__).resolve().parents[2] / "filter_plugins" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bluegreen_filter_{name}", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin.FilterModule().filters()


class TestInventoryChecks:
    def test_declarations_and_the_preflight_refusal_as_filters(self) -> None:
        found = plugin_filters("dependencies")
        problems = found["bluegreen_dependency_problems"](
            [{"name": "x", "tcp": "db1"}], "bluegreen_service_dependencies"
        )
        assert problems == [
            "bluegreen_service_dependencies[0] (x).tcp must be host:port, got 'db1'"
        ]
        refusal = found["bluegreen_dependency_refusal"](
            {
                "a": {"probes": [{"name": "x", "ok": False, "error": "refused"}]},
                "b": {"probes": [{"name": "x", "ok": True}]},
            },
            ["a"],
            ["b"],
            "green",
        )
        assert refusal.startswith("x does not answer from the green colour's hosts (a: refused)")

    def test_bad_thresholds_and_routes_are_named_before_anything_changes(self) -> None:
        check = plugin_filters("golden_signals")["bluegreen_analysis_problems"]

        assert check({"cpu": {"critical": 20}}, []) == [
            "bluegreen_analysis_thresholds: thresholds.cpu: warning (70) is above critical "
            "(20); each level must be at most the next one"
        ]
        assert check({"cpu": {"warning": 15, "critical": 20}}, None) == []
        routes = check({}, [{"route": "generate", "latency_p95": {"critical": 5}}])
        assert routes and routes[0].startswith("bluegreen_analysis_routes: routes[0].route")
        assert check({"latency_p95": {"bogus": 1}}, [])[0].startswith(
            "bluegreen_analysis_thresholds: bluegreen_analysis_thresholds.latency_p95 has a key"
        )
