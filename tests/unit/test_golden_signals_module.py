"""golden_signals end to end in-process, against real HTTP servers on 127.0.0.1.

The scrape tests serve Prometheus exposition text from tiny local servers and change it
between the start and the end of the window; the Prometheus tests run a fake HTTP API that
answers canned JSON and records every query it was sent, so the exact PromQL is checked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ansible.module_utils.golden_signals as gs
import golden_signals
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

ROOT = Path(__file__).resolve().parents[2]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GREEN = 'job="sampleapp",colour="green"'
SEL = 'job="sampleapp",colour="green",route!~"/health|/metrics"'
BUCKET = "http_request_duration_seconds_bucket"
P95 = f"histogram_quantile(0.95, sum by (le) (rate({BUCKET}{{{SEL}}}[5m])))"
P99 = f"histogram_quantile(0.99, sum by (le) (rate({BUCKET}{{{SEL}}}[5m])))"
TRAFFIC = f"sum(rate(http_requests_total{{{SEL}}}[5m]))"
ERRORS = (
    f'(sum(rate(http_requests_total{{{SEL},status=~"5.."}}[5m])) or vector(0)) '
    f"/ sum(rate(http_requests_total{{{SEL}}}[5m]))"
)
UP = f"1 - avg(up{{{GREEN}}})"


class App:
    """One process of the sample service, with the sampleapp's metrics in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.latency = Histogram(
            "http_request_duration_seconds", "", labels, buckets=BUCKETS, registry=self.registry
        )
        self.requests = Counter("http_requests", "", labels, registry=self.registry)

    def serve(self, route: str, status: int, seconds: float, n: int) -> App:
        for _ in range(n):
            self.latency.labels("GET", route, str(status)).observe(seconds)
            self.requests.labels("GET", route, str(status)).inc()
        return self

    def text(self) -> str:
        return generate_latest(self.registry).decode()


class Server:
    """A local HTTP server; `respond(path, query)` gives (status, content type, body)."""

    def __init__(self, respond: Callable[[str, dict[str, list[str]]], tuple[int, str, str]]):
        self.respond = respond
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                status, content_type, body = owner.respond(url.path, parse_qs(url.query))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MetricsServer(Server):
    """Serves /metrics: `text` now, or the next of `texts` on each request."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.texts: list[str] = []
        self.hits = 0
        super().__init__(self._respond)

    def _respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
        self.hits += 1
        if path != "/metrics":
            return 404, "text/plain", "not found"
        if self.texts:
            self.text = self.texts.pop(0)
        return 200, "text/plain; version=0.0.4", self.text

    @property
    def url(self) -> str:
        return f"{self.base}/metrics"


class FakePrometheus(Server):
    """/api/v1/query answering from `answers` (query: value, or (status, body)); records queries."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.received: list[tuple[str, float]] = []
        super().__init__(self._respond)

    def _respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
        if path != "/api/v1/query":
            return 404, "text/plain", "404 page not found"
        promql = query["query"][0]
        self.received.append((promql, float(query["time"][0])))
        answer = self.answers.get(promql)
        if isinstance(answer, tuple):
            status, body = answer
            return status, "application/json", json.dumps(body)
        result = [] if answer is None else [{"metric": {}, "value": [1.0, str(answer)]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(body)

    @property
    def queries(self) -> list[str]:
        return [q for q, _ in self.received]


@pytest.fixture
def servers() -> Iterator[Callable[..., Any]]:
    started: list[Server] = []

    def start(kind: type[Server] = MetricsServer, *args: Any) -> Any:
        server = kind(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port that was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def scrape_args(targets: list[str], **overrides: Any) -> dict[str, Any]:
    return {"source": "scrape", "targets": targets, "timeout": 2, **overrides}


def prometheus_args(url: str, **overrides: Any) -> dict[str, Any]:
    return {"source": "prometheus", "prometheus_url": url, "selector": GREEN, **overrides}


class TestScrape:
    def traffic(self, a: App, b: App) -> None:
        """200 user requests over both targets, 10 of them 5xx, plus health checks and scrapes."""
        a.serve("/notes", 200, 0.03, 90).serve("/notes", 500, 0.3, 10).serve("/health", 503, 9, 40)
        b.serve("/", 200, 0.2, 100).serve("/metrics", 200, 0.001, 30)

    def test_sample_then_analyse_since_the_baseline(self, run_module, servers) -> None:
        a, b = App().serve("/health", 200, 0.001, 500), App()
        server_a, server_b = servers(MetricsServer, a.text()), servers(MetricsServer, b.text())
        targets = [server_a.url, server_b.url]

        first = run_module(golden_signals.main, scrape_args(targets, mode="sample"))

        assert (first["changed"], first["verdict"], first["signals"]) == (False, None, {})
        start = first["sample"]["targets"][server_a.url]
        assert start["error"] is None
        health = 'http_requests_total{method="GET",route="/health",status="200"}'
        assert start["series"][health] == 500

        self.traffic(a, b)
        server_a.text, server_b.text = a.text(), b.text()
        result = run_module(golden_signals.main, scrape_args(targets, baseline=first["sample"]))

        assert result["failed"] is False and result["changed"] is False
        signals = result["signals"]
        assert result["requests"] == 200
        assert result["window_s"] > 0
        assert signals["traffic"]["value"] == pytest.approx(200 / result["window_s"])
        assert signals["error_rate"]["value"] == pytest.approx(0.05)
        assert signals["error_rate"]["verdict"] == "warning"
        assert signals["latency_p95"]["value"] == pytest.approx(0.25)
        assert signals["latency_p99"]["value"] == pytest.approx(0.45)
        assert signals["latency_p95"]["unit"] == "s"
        assert (signals["latency_p95"]["warning"], signals["latency_p95"]["critical"]) == (0.5, 1.0)
        assert signals["targets_down"]["verdict"] == "ok"
        assert signals["cpu"]["verdict"] == "not_configured"
        assert (result["verdict"], result["p0"]) == ("warning", False)
        assert result["parser"] == "prometheus_client"
        assert result["comparison"] is None
        evidence = signals["error_rate"]["samples"]
        failed = 'http_requests_total{method="GET",route="/notes",status="500"}'
        assert evidence[server_a.url]["end"][failed] == 10
        assert failed not in evidence[server_a.url]["start"]
        assert result["sample"]["targets"][server_a.url]["series"][failed] == 10

    def test_without_baseline_it_reads_sleeps_the_window_and_reads_again(
        self, run_module, servers
    ) -> None:
        app = App()
        server = servers(MetricsServer)
        server.texts = [app.text(), app.serve("/", 200, 0.07, 60).text()]

        result = run_module(golden_signals.main, scrape_args([server.url], window=1))

        assert server.hits == 2
        assert result["window_s"] >= 1
        assert result["requests"] == 60
        assert result["signals"]["latency_p95"]["value"] == pytest.approx(0.05 + 0.05 * 0.95)
        assert result["verdict"] == "ok"

    def test_the_builtin_parser_gives_the_same_answer(
        self, run_module, servers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(gs, "text_string_to_metric_families", None)
        a, b = App(), App()
        server_a, server_b = servers(MetricsServer, a.text()), servers(MetricsServer, b.text())
        targets = [server_a.url, server_b.url]
        first = run_module(golden_signals.main, scrape_args(targets, mode="sample"))
        self.traffic(a, b)
        server_a.text, server_b.text = a.text(), b.text()

        result = run_module(golden_signals.main, scrape_args(targets, baseline=first["sample"]))

        assert result["parser"] == "builtin"
        assert result["requests"] == 200
        assert result["signals"]["latency_p95"]["value"] == pytest.approx(0.25)
        assert result["signals"]["error_rate"]["value"] == pytest.approx(0.05)

    def test_counter_reset_uses_the_end_value(self, run_module, servers) -> None:
        server = servers(MetricsServer, App().serve("/", 200, 0.01, 1000).text())
        first = run_module(golden_signals.main, scrape_args([server.url], mode="sample"))
        restarted = App().serve("/", 200, 0.01, 20).serve("/", 500, 0.01, 60)
        server.text = restarted.text()  # a new process: its counters started again from 0

        result = run_module(
            golden_signals.main, scrape_args([server.url], baseline=first["sample"])
        )

        assert result["requests"] == 80
        assert result["signals"]["error_rate"]["value"] == 0.75
        assert (result["verdict"], result["p0"]) == ("critical", True)
        assert (
            f'{server.url} http_requests_total{{method="GET",route="/",status="200"}}'
            in result["signals"]["error_rate"]["resets"]
        )

    def test_no_traffic_is_inconclusive(self, run_module, servers) -> None:
        app = App()
        server = servers(MetricsServer, app.text())
        first = run_module(golden_signals.main, scrape_args([server.url], mode="sample"))
        server.text = app.serve("/health", 200, 0.001, 100).text()

        result = run_module(
            golden_signals.main, scrape_args([server.url], baseline=first["sample"])
        )

        assert result["verdict"] == "inconclusive"
        assert result["requests"] == 0
        assert "only 0 requests" in result["signals"]["latency_p95"]["reason"]

    def test_one_target_down_is_critical_all_down_is_p0(
        self, run_module, servers, closed_url: str
    ) -> None:
        app = App()
        server = servers(MetricsServer, app.text())
        down = f"{closed_url}/metrics"
        first = run_module(golden_signals.main, scrape_args([server.url, down], mode="sample"))
        assert first["sample"]["targets"][down]["series"] is None
        assert first["sample"]["targets"][down]["error"]
        server.text = app.serve("/", 200, 0.01, 100).text()

        some = run_module(
            golden_signals.main, scrape_args([server.url, down], baseline=first["sample"])
        )
        assert (some["verdict"], some["p0"]) == ("critical", False)
        assert some["signals"]["targets_down"]["value"] == 0.5
        assert down in some["signals"]["targets_down"]["reason"]
        assert some["signals"]["targets_down"]["targets"][server.url] == "up"

        none = run_module(golden_signals.main, scrape_args([down], window=1))
        assert (none["verdict"], none["p0"]) == ("critical", True)
        assert none["signals"]["targets_down"]["reason"].startswith("service down: 1 of 1")

    def test_node_and_db_exporters(self, run_module, servers) -> None:
        app = App()
        server = servers(MetricsServer, app.text())
        node = servers(
            MetricsServer,
            'node_cpu_seconds_total{cpu="0",mode="idle"} 100\n'
            'node_cpu_seconds_total{cpu="0",mode="user"} 100\n',
        )
        db = servers(
            MetricsServer,
            'pg_stat_activity_count{datname="app",state="active"} 97\n'
            "pg_settings_max_connections 100\n",
        )
        args = scrape_args([server.url], node_targets=[node.url], db_targets=[db.url])
        first = run_module(golden_signals.main, {**args, "mode": "sample"})
        server.text = app.serve("/", 200, 0.01, 100).text()
        node.text = (
            'node_cpu_seconds_total{cpu="0",mode="idle"} 101\n'
            'node_cpu_seconds_total{cpu="0",mode="user"} 119\n'
            "node_memory_MemAvailable_bytes 1e9\nnode_memory_MemTotal_bytes 4e9\n"
            'node_filesystem_avail_bytes{mountpoint="/"} 50\n'
            'node_filesystem_size_bytes{mountpoint="/"} 100\n'
        )

        result = run_module(golden_signals.main, {**args, "baseline": first["sample"]})

        signals = result["signals"]
        assert signals["cpu"]["value"] == pytest.approx(95.0)  # 19 busy of 20 CPU seconds
        assert (signals["cpu"]["verdict"], signals["cpu"]["p0"]) == ("critical", False)
        assert signals["memory"]["value"] == pytest.approx(75.0)
        assert signals["disk"]["value"] == pytest.approx(50.0)
        assert signals["db_connections"]["value"] == pytest.approx(97.0)
        assert signals["db_connections"]["verdict"] == "critical"
        assert signals["cpu"]["samples"][node.url]["start"] == {
            'node_cpu_seconds_total{cpu="0",mode="idle"}': 100.0,
            'node_cpu_seconds_total{cpu="0",mode="user"}': 100.0,
        }
        assert result["verdict"] == "critical"

    def test_comparison_with_the_old_colour(self, run_module, servers) -> None:
        new, old = App(), App()
        server_new, server_old = (
            servers(MetricsServer, new.text()),
            servers(MetricsServer, old.text()),
        )
        args = scrape_args([server_new.url], compare_targets=[server_old.url])
        first = run_module(golden_signals.main, {**args, "mode": "sample"})
        server_new.text = new.serve("/", 200, 0.4, 100).text()
        server_old.text = old.serve("/", 200, 0.2, 100).text()

        result = run_module(golden_signals.main, {**args, "baseline": first["sample"]})

        comparison = result["comparison"]
        assert comparison["latency_p95_ratio"]["value"] == pytest.approx(0.4875 / 0.2425)
        # The p95's ratio warns only, by default: the comparison's warning is the verdict.
        assert comparison["latency_p95_ratio"]["verdict"] == "warning"
        assert comparison["error_rate_diff"]["value"] == 0
        assert comparison["baseline"]["requests"] == 100
        assert server_old.url in comparison["baseline"]["samples"]
        assert result["signals"]["latency_p95"]["verdict"] == "ok"
        assert result["verdict"] == "warning"

    def test_baseline_for_other_targets_is_refused(self, run_module, servers) -> None:
        server = servers(MetricsServer, App().text())
        other = servers(MetricsServer, App().text())
        first = run_module(golden_signals.main, scrape_args([server.url], mode="sample"))

        result = run_module(golden_signals.main, scrape_args([other.url], baseline=first["sample"]))

        assert result["failed"] is True
        assert "baseline has no sample of targets" in result["msg"]


class TestPrometheus:
    def test_exact_queries_at_the_window_end_and_verdicts(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {TRAFFIC: 2.0, ERRORS: 0.002, P95: 0.62, P99: 0.9, UP: 0}

        result = run_module(golden_signals.main, prometheus_args(prometheus.base))

        assert prometheus.queries == [TRAFFIC, ERRORS, P95, P99, UP]
        assert {t for _, t in prometheus.received} == {round(result["evaluated_at"], 3)}
        signals = result["signals"]
        assert signals["latency_p95"] == {
            "value": 0.62,
            "unit": "s",
            "warning": 0.5,
            "critical": 1.0,
            "p0_threshold": 2.0,
            "verdict": "warning",
            "p0": False,
            "reason": "p95 latency 0.62 s is above the warning threshold 0.5 s",
            "query": P95,
        }
        assert result["requests"] == 600
        assert signals["traffic"]["reason"].endswith("(600 requests in 300 s)")
        assert signals["error_rate"]["verdict"] == "ok"
        assert signals["targets_down"]["verdict"] == "ok"
        assert signals["cpu"]["verdict"] == "not_configured"
        assert (result["verdict"], result["p0"], result["window_s"]) == ("warning", False, 300)
        assert result["parser"] is None
        assert result["sample"] == {"source": "prometheus", "taken_at": result["evaluated_at"]}

    def test_node_db_and_comparison_queries(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        blue = 'job="sampleapp",colour="blue"'
        old_sel = 'job="sampleapp",colour="blue",route!~"/health|/metrics"'
        old_p95 = f"histogram_quantile(0.95, sum by (le) (rate({BUCKET}{{{old_sel}}}[1m])))"
        old_traffic = f"sum(rate(http_requests_total{{{old_sel}}}[1m]))"
        cpu = (
            "100 * max(1 - sum by (instance) "
            '(rate(node_cpu_seconds_total{job="node",mode="idle"}[1m])) '
            '/ sum by (instance) (rate(node_cpu_seconds_total{job="node"}[1m])))'
        )
        p95 = P95.replace("[5m]", "[1m]")
        prometheus.answers = {
            TRAFFIC.replace("[5m]", "[1m]"): 5.0,
            ERRORS.replace("[5m]", "[1m]"): 0.0,
            p95: 0.3,
            P99.replace("[5m]", "[1m]"): 0.4,
            UP: 0.0,
            cpu: 96.5,
            old_traffic: 5.0,
            old_p95: 0.1,
        }
        args = prometheus_args(
            prometheus.base,
            window=60,
            compare_selector=blue,
            node_selector='job="node"',
            db_selector='job="postgres"',
        )

        result = run_module(golden_signals.main, args)

        assert cpu in prometheus.queries and old_p95 in prometheus.queries
        signals = result["signals"]
        assert (signals["cpu"]["value"], signals["cpu"]["verdict"], signals["cpu"]["p0"]) == (
            96.5,
            "critical",
            True,
        )
        assert signals["memory"]["verdict"] == "inconclusive"
        assert "no series matched" in signals["memory"]["reason"]
        assert signals["db_connections"]["query"].startswith("100 * max(sum by (instance)")
        comparison = result["comparison"]
        assert comparison["latency_p95_ratio"]["value"] == pytest.approx(3.0)
        # The p95's ratio warns only, by default.
        assert comparison["latency_p95_ratio"]["verdict"] == "warning"
        assert comparison["error_rate_diff"]["verdict"] == "inconclusive"
        assert comparison["baseline"]["queries"]["latency_p95"] == old_p95
        assert (result["verdict"], result["p0"]) == ("critical", True)

    def test_unreachable_prometheus_is_inconclusive_never_ok(
        self, run_module, closed_url: str
    ) -> None:
        result = run_module(golden_signals.main, prometheus_args(closed_url, timeout=2))

        assert result["failed"] is False
        assert (result["verdict"], result["p0"]) == ("inconclusive", False)
        for name in ("targets_down", "traffic", "error_rate", "latency_p95", "latency_p99"):
            signal = result["signals"][name]
            assert signal["verdict"] == "inconclusive", name
            assert f"Prometheus is unreachable: {closed_url}" in signal["reason"], name
            assert signal["query"]

    def test_missing_metric_and_refused_query_say_which(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {
            TRAFFIC: 2.0,
            ERRORS: 0.0,
            P99: (400, {"status": "error", "errorType": "bad_data", "error": "boom"}),
            UP: 0,
        }

        result = run_module(golden_signals.main, prometheus_args(prometheus.base))

        p95, p99 = result["signals"]["latency_p95"], result["signals"]["latency_p99"]
        assert p95["verdict"] == "inconclusive"
        assert p95["reason"].startswith(f"no series matched {P95!r}")
        assert p99["reason"] == f"Prometheus refused {P99!r} (HTTP 400, bad_data): boom"
        assert result["verdict"] == "inconclusive"

    def test_service_down_is_p0(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {UP: 1}

        result = run_module(golden_signals.main, prometheus_args(prometheus.base))

        assert (result["verdict"], result["p0"]) == ("critical", True)
        assert result["signals"]["targets_down"]["reason"] == "service down: no target is up"

    def test_baseline_sets_the_window(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        first = run_module(golden_signals.main, prometheus_args(prometheus.base, mode="sample"))
        assert prometheus.queries == []
        baseline = dict(first["sample"], taken_at=first["sample"]["taken_at"] - 120)

        result = run_module(
            golden_signals.main, prometheus_args(prometheus.base, baseline=baseline)
        )

        assert result["window_s"] == 120
        assert prometheus.queries[0] == TRAFFIC.replace("[5m]", "[2m]")


class TestOptions:
    def test_thresholds_file_and_option_are_layered(
        self, run_module, servers, tmp_path: Path
    ) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {TRAFFIC: 2.0, ERRORS: 0.002, P95: 0.62, P99: 0.9, UP: 0}
        path = tmp_path / "thresholds.yml"
        path.write_text("latency_p95:\n  warning: 0.7\nerror_rate:\n  warning: 0.001\n")

        result = run_module(
            golden_signals.main,
            prometheus_args(
                prometheus.base,
                thresholds_file=str(path),
                thresholds={"error_rate": {"warning": 0.003}},
            ),
        )

        assert result["thresholds"]["latency_p95"] == {"warning": 0.7, "critical": 1.0, "p0": 2.0}
        assert result["thresholds"]["error_rate"]["warning"] == 0.003
        assert result["signals"]["latency_p95"]["verdict"] == "ok"
        assert result["signals"]["error_rate"]["verdict"] == "ok"
        assert result["verdict"] == "ok"

    def test_the_role_thresholds_file_loads(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        path = ROOT / "roles" / "bluegreen_analysis" / "files" / "thresholds.yml"
        result = run_module(
            golden_signals.main, prometheus_args(prometheus.base, thresholds_file=str(path))
        )
        assert result["failed"] is False
        assert result["thresholds"] == gs.DEFAULT_THRESHOLDS

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"thresholds": {"error_rate": {"warning": 5}}}, "it is a ratio: 0.01 means 1%"),
            ({"thresholds": {"latency": {"warning": 1}}}, "'latency', which is not a signal"),
            ({"thresholds_file": "/nonexistent/thresholds.yml"}, "does not exist"),
            ({"targets": ["http://127.0.0.1:1/metrics"]}, "apply to source=scrape"),
            ({"window": 0}, "window must be"),
            ({"baseline": {"source": "scrape", "taken_at": 1}}, "source=prometheus"),
            ({"analysis": {"count": 0}}, "analysis.count must be 1 or more"),
        ],
    )
    def test_bad_options_fail_with_what_to_do(
        self, run_module, overrides: dict[str, Any], message: str
    ) -> None:
        result = run_module(golden_signals.main, prometheus_args("http://127.0.0.1:1", **overrides))
        assert result["failed"] is True
        assert message in result["msg"]

    def test_invalid_yaml_file(self, run_module, tmp_path: Path) -> None:
        path = tmp_path / "bad.yml"
        path.write_text("cpu: [\n")
        result = run_module(
            golden_signals.main, prometheus_args("http://127.0.0.1:1", thresholds_file=str(path))
        )
        assert result["failed"] is True and "is not valid YAML" in result["msg"]

    def test_scrape_needs_targets(self, run_module) -> None:
        result = run_module(golden_signals.main, {"source": "scrape"})
        assert result["failed"] is True
        assert "targets" in result["msg"]

    def test_check_mode_measures_as_usual(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {TRAFFIC: 2.0, ERRORS: 0.0, P95: 0.1, P99: 0.2, UP: 0}

        result = run_module(golden_signals.main, prometheus_args(prometheus.base), check_mode=True)

        assert (result["changed"], result["verdict"]) == (False, "ok")
        assert len(prometheus.queries) == 5

    def test_analysis_loop_decision_and_history(self, run_module, servers) -> None:
        prometheus = servers(FakePrometheus)
        prometheus.answers = {TRAFFIC: 2.0, ERRORS: 0.0, P95: 0.1, P99: 0.2, UP: 0}
        analysis: dict[str, Any] = {"count": 2, "history": []}

        first = run_module(golden_signals.main, prometheus_args(prometheus.base, analysis=analysis))
        assert first["decision"]["action"] == "continue"
        assert first["history"] == [{"verdict": "ok", "p0": False, "at": first["evaluated_at"]}]

        analysis["history"] = first["history"]
        second = run_module(
            golden_signals.main, prometheus_args(prometheus.base, analysis=analysis)
        )
        assert (second["decision"]["action"], second["decision"]["verdict"]) == ("pass", "ok")
        assert len(second["history"]) == 2

        prometheus.answers[P95] = 2.5
        analysis["history"] = [{"verdict": "ok"}]
        third = run_module(golden_signals.main, prometheus_args(prometheus.base, analysis=analysis))
        assert third["p0"] is True
        assert third["decision"]["action"] == "fail"
        assert third["decision"]["reason"].startswith("measurement 2 tripped a P0 rule")


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Take the baseline
      golden_signals:
        source: scrape
        mode: sample
        targets: ["{url}"]
      register: baseline
    - name: Analyse since the baseline
      golden_signals:
        source: scrape
        targets: ["{url}"]
        baseline: "{{{{ baseline.sample }}}}"
        min_requests: 10
      register: signals
"""


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs /usr/bin/python3")
def test_ansible_runs_it_with_an_interpreter_without_prometheus_client(
    servers, tmp_path: Path
) -> None:
    """Through ansible-playbook, the baseline round-trips and the builtin parser does the job."""
    app = App()
    hits = {"n": 0}

    def respond(path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
        hits["n"] += 1
        app.serve("/", 200 if hits["n"] % 2 else 500, 0.02, 20)  # 20 more requests per scrape
        return 200, "text/plain", app.text()

    server = servers(Server, respond)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(url=f"{server.base}/metrics"))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LIBRARY=str(ROOT / "library"),
        ANSIBLE_MODULE_UTILS=str(ROOT / "module_utils"),
    )
    run = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=/usr/bin/python3",
            str(playbook),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    result = tasks[1]["hosts"]["localhost"]
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import prometheus_client"], capture_output=True, check=False
    )
    assert result["parser"] == ("builtin" if probe.returncode else "prometheus_client")
    assert result["requests"] == 20
    assert result["signals"]["error_rate"]["value"] == 1.0
    assert (result["verdict"], result["p0"]) == ("critical", True)
