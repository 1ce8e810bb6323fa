"""synthetic_load: the load step, its schedule and summary; the module against a local server."""

from __future__ import annotations

import http.server
import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import synthetic_load
from ansible.module_utils.synthetic_load import (
    LoadError,
    Outcome,
    Route,
    load_step,
    percentile,
    schedule,
    summarise,
)
from conftest import serving

STEP = {
    "targets": ["http://10.0.0.12:8002", "http://10.0.0.13:8002/"],
    "routes": [{"path": "/", "status": 200}, "/notes?limit=1"],
    "rate": 10,
    "concurrency": 4,
    "duration": 2,
    "timeout": 5,
}


def test_open_loop_schedule_spreads_requests_evenly_over_servers_and_routes() -> None:
    step = load_step(STEP)
    plan = schedule(step)

    assert len(plan) == 20
    assert [offset for offset, _, _ in plan[:3]] == [0.0, 0.1, 0.2]
    pairs = Counter((target, route.path) for _, target, route in plan)
    assert set(pairs.values()) == {5}
    assert {target for target, _ in pairs} == {"http://10.0.0.12:8002", "http://10.0.0.13:8002"}


def test_a_route_given_as_a_path_is_a_get_expecting_200() -> None:
    assert load_step(STEP).routes[1] == Route("GET", "/notes?limit=1", 200)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"targets": []}, "targets is empty"),
        ({"targets": ["10.0.0.12:8002"]}, "is not an http(s) base URL"),
        ({"targets": ["http://h:1/app"]}, "has a path"),
        ({"routes": []}, "routes is empty"),
        ({"routes": [{"path": "notes"}]}, "needs a path starting with '/'"),
        ({"routes": [{"path": "/notes", "method": "post"}]}, "would change data"),
        (
            {"routes": [{"path": "/api", "headers": {"Authorization": "Bearer t"}}]},
            "route GET /api sets headers, which the load step does not send",
        ),
        ({"routes": [{"path": "/api", "json": {"a": 1}}]}, "route GET /api sets json"),
        ({"rate": -1}, "is negative"),
        ({"concurrency": 0}, "must be at least 1"),
        ({"duration": 0}, "must be a positive number"),
        ({"warmup": 2}, "warmup 2 must be 0 or more seconds and shorter than duration 2"),
        ({"warmup": -1}, "warmup -1 must be 0 or more"),
    ],
)
def test_a_bad_step_is_refused_naming_the_problem(change: dict, message: str) -> None:
    with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_step(STEP | change)


def test_a_smoke_routes_expectations_are_not_the_load_steps_business() -> None:
    smoke = {"path": "/", "expect_text": "ok", "expect_json": {"a": 1}, "follow_redirects": False,
             "headers": None, "body": None, "json": None}  # fmt: skip

    assert load_step(STEP | {"routes": [smoke]}).routes == (Route("GET", "/", 200),)


def test_unsafe_methods_need_to_be_allowed() -> None:
    step = load_step(
        STEP
        | {"routes": [{"path": "/notes", "method": "POST", "status": 201}]}
        | {"allow_unsafe_methods": True}
    )
    assert step.unsafe and step.routes[0] == Route("POST", "/notes", 201)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([], 0.95) is None


def test_summary_counts_statuses_unanswered_and_unexpected_per_route_and_target() -> None:
    step = load_step(STEP)
    root, notes = step.routes
    a, b = step.targets
    outcomes = [
        Outcome(a, root, 100.0, 0.010, 200),
        Outcome(b, root, 100.1, 0.020, 500),
        Outcome(a, notes, 100.2, 0.030, 200),
        Outcome(b, notes, 100.3, 5.0, None, "TimeoutError"),
    ]

    summary = summarise(step, outcomes, 100.0, 105.3)

    assert summary["requests"] == 4
    assert summary["unanswered"] == 1
    assert summary["unexpected"] == 1
    assert summary["statuses"] == {"200": 2, "500": 1}
    assert summary["errors"] == {"TimeoutError": 1}
    assert summary["by_route"]["GET /"]["statuses"] == {"200": 1, "500": 1}
    assert summary["by_target"][b] == {
        "requests": 2,
        "unanswered": 1,
        "unexpected": 1,
        "statuses": {"500": 1},
        "latency_histogram_ms": {"20": 1},
    }
    assert summary["latency_histogram_ms"] == {"10": 1, "20": 1, "30": 1}
    assert summary["latency_ms"] == {"p50": 20.0, "p95": 30.0, "max": 30.0}
    assert summary["step"]["planned_requests"] == 20


def test_the_warmup_answers_count_but_their_times_are_not_judged() -> None:
    step = load_step(STEP | {"warmup": 0.5})
    root, _ = step.routes
    a, _ = step.targets
    outcomes = [
        Outcome(a, root, 100.0, 1.2, 200),  # the cold process's first answer
        Outcome(a, root, 100.4, 0.0, None, "ConnectionRefusedError"),
        Outcome(a, root, 100.6, 0.010, 200),
        Outcome(a, root, 101.0, 0.012, 500),
    ]

    summary = summarise(step, outcomes, 100.0, 102.0)

    assert summary["requests"] == 4
    assert summary["unanswered"] == 1
    assert summary["statuses"] == {"200": 2, "500": 1}
    assert summary["by_target"][a]["latency_histogram_ms"] == {"10": 1, "12": 1}
    assert summary["latency_ms"]["max"] == 12.0
    assert summary["warmup"] == {"seconds": 0.5, "requests": 2, "latency_ms_max": 1200.0}


@pytest.fixture
def slow_server() -> Iterator[tuple[str, list[str]]]:
    """Answers /slow after 0.3 s and everything else at once; records the paths asked."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path == "/slow":
                time.sleep(0.3)
            self.send_response(500 if self.path == "/boom" else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as port:
        yield f"http://127.0.0.1:{port}", seen


def test_module_sends_the_whole_open_loop_step_even_to_a_slow_route(run_module, slow_server):
    url, seen = slow_server

    result = run_module(
        synthetic_load.main,
        {
            "targets": [url],
            "routes": ["/slow", "/boom"],
            "rate": 20,
            "duration": 1,
            "concurrency": 16,
        },
    )

    assert result["changed"] is False and result["sent"] is True
    assert result["requests"] == 20 == len(seen)
    assert result["statuses"] == {"200": 10, "500": 10}
    assert result["unexpected"] == 10
    assert result["by_route"]["GET /slow"]["requests"] == 10
    assert result["latency_ms"]["max"] >= 300


def test_module_closed_loop_keeps_its_clients_busy_for_the_duration(run_module, slow_server):
    url, seen = slow_server

    result = run_module(
        synthetic_load.main,
        {"targets": [url], "routes": ["/slow"], "rate": 0, "concurrency": 2, "duration": 0.5},
    )

    assert result["requests"] == len(seen) >= 2
    assert result["unanswered"] == 0


def test_module_counts_a_server_that_does_not_answer_as_unanswered(run_module) -> None:
    result = run_module(
        synthetic_load.main,
        {"targets": ["http://127.0.0.1:9"], "routes": ["/"], "rate": 10, "duration": 0.3},
    )

    assert result["requests"] == 3
    assert result["unanswered"] == 3
    assert result["errors"] == {"ConnectionRefusedError": 3}


def test_module_refuses_a_bad_step_and_sends_nothing(run_module, slow_server) -> None:
    url, seen = slow_server

    result = run_module(
        synthetic_load.main, {"targets": [url], "routes": [{"path": "/", "method": "DELETE"}]}
    )

    assert result["failed"]
    assert "would change data" in result["msg"] and "nothing was sent" in result["msg"]
    assert seen == []


def test_check_mode_sends_unsafe_methods_never(run_module, slow_server) -> None:
    url, seen = slow_server

    result = run_module(
        synthetic_load.main,
        {
            "targets": [url],
            "routes": [{"path": "/notes", "method": "POST"}],
            "allow_unsafe_methods": True,
            "duration": 0.2,
        },
        check_mode=True,
    )

    assert result["sent"] is False and result["requests"] == 0
    assert seen == []


def test_module_refuses_a_route_with_headers_without_showing_their_values(
    run_module, slow_server
) -> None:
    url, seen = slow_server
    route = {"path": "/api", "headers": {"Authorization": "Bearer s3cr3t"}, "body": "hunter2"}

    result = run_module(synthetic_load.main, {"targets": [url], "routes": ["/", route]})

    assert result["failed"]
    assert "route GET /api sets headers and body" in result["msg"]
    assert "s3cr3t" not in json.dumps(result) and "hunter2" not in json.dumps(result)
    assert seen == []
