"""The colour's own signals on real traffic: CPU and memory of its processes from
systemd's accounting of its unit, and the error events of its journal, measured on its
app host in every analysis window. A version bad in only one of them is rolled back by
itself, and the rollback names that signal; the others stay as they were."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import (
    JOURNAL_PATH,
    LAB,
    SteadyTraffic,
    bluegreen,
    ensure_live,
    inventory_vars,
    live,
    shell,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

# The team's caps for this service: 15 ms of CPU per request and 150 MB for its
# processes. A healthy colour spends a few ms a request and holds about 55 MB under the
# test's traffic; each fault version crosses one cap only after its first 200 requests,
# past the smoke probes and the pre-switch load step. CPU per request, not the CPU
# share: on a busy machine the scheduler starves the colour and its share stays low,
# while what each request costs does not change.
CAPS = {
    "bluegreen_analysis_thresholds": {
        "cpu_per_request": {"critical": 15},
        "process_memory": {"critical": 150},
    }
}
PASSWORD = "lab-only-sampleapp-password"
HOST_SIGNALS = ("cpu", "cpu_per_request", "process_memory", "log_errors", "memory", "disk")


@pytest.mark.parametrize(
    ("version", "signal", "said"),
    [
        # 20 ms of CPU in every request (thread CPU time, whatever the machine's load).
        ("2.0.7+cpu20.after200req", "cpu_per_request", "CPU of the colour's processes per"),
        # 1 MB kept by every request: past 150 MB within seconds.
        ("2.0.8+leak1.after200req", "process_memory", "memory of the colour's processes"),
        # A traceback logged in every request, each answered 200: only the log shows it.
        ("2.0.9+tracebacks.after200req", "log_errors", "error events in the colour's log"),
    ],
)
def test_a_version_bad_in_one_signal_of_its_own_is_rolled_back_naming_it(
    version: str, signal: str, said: str
) -> None:
    ensure_live("2.0.0")
    before = live()

    with SteadyTraffic(), inventory_vars(LAB, CAPS):
        result = bluegreen("release", "--version", version)

    assert result.exit_code == 4, result.report
    assert result.outcome == "rolled_back"
    assert f"{signal}: {said}" in result.message, result.message
    after = live()
    assert (after.colour, after.version) == (before.colour, "2.0.0")

    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    records = [json.loads(line) for line in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]]
    analysis = next(r for r in records if r["release_id"] == release_id and r["step"] == "analysis")
    signals = analysis["evidence"]["signals"]
    idle = "app-blue" if before.colour == "green" else "app-green"
    # Measured on the new colour's own host, and only the fault's signal is critical.
    for name in HOST_SIGNALS:
        assert idle in signals[name]["hosts"], (name, signals[name])
        assert signals[name]["verdict"] != "inconclusive", (name, signals[name])
    # The fault's own signal is critical. (On a busy machine its cost shows in latency
    # too: a request that burns 20 ms of CPU waits for it.)
    assert signals[signal]["verdict"] == "critical", signals[signal]
    assert signals["error_rate"]["verdict"] == "ok"
    for other in {"process_memory", "log_errors"} - {signal}:
        assert signals[other]["verdict"] in ("ok", "warning"), signals[other]
    if signal == "cpu_per_request":
        # Each worker burns its 20 ms only from its own 200th request on, so the window
        # that tripped may mix requests from before that (a CI run measured 15.1 ms): above
        # the cap it is judged by, and well above a healthy colour's few ms.
        cap = CAPS["bluegreen_analysis_thresholds"]["cpu_per_request"]["critical"]
        assert signals["cpu_per_request"]["value"] > cap, signals["cpu_per_request"]
    if signal == "log_errors":
        excerpt = signals["log_errors"]["hosts"][idle]["excerpts"][0]
        assert excerpt[-1].startswith("RuntimeError: injected fault tracebacks"), excerpt
        # The fault's message carries the database URL: it never leaves the host.
        assert excerpt[-1].endswith(" on ********"), excerpt
        journal = shell("lb1", f"cat {JOURNAL_PATH}")["stdout"]
        assert PASSWORD not in journal
        assert PASSWORD not in json.dumps(result.report)


def test_a_version_slower_than_the_old_colour_yet_under_the_fixed_thresholds_is_rolled_back() -> (
    None
):
    """Each request of the new version takes 70 % longer inside the service than the old
    colour's did before the switch; at the load balancer, with nginx's and gunicorn's own
    few milliseconds on both sides, about 172 ms against 103 ms at the median (1.67x),
    far under the fixed 500 ms p95 warning. Only the comparison with the old colour's
    baseline sees it. (A lag60 build measured 1.55x at the p95 and was rolled back too;
    70 keeps the test clear of the 1.5x line on a loaded machine.)"""
    ensure_live("2.0.0")
    before = live()

    # Traffic to a route of a known time (100 ms of work), so the ratio is the fault's.
    with SteadyTraffic(path="/work?ms=100"):
        result = bluegreen("release", "--version", "2.0.10+lag70.after200req")

    assert result.exit_code == 4, result.report
    assert "latency_p50_ratio: median latency new/old" in result.message, result.message
    after = live()
    assert (after.colour, after.version) == (before.colour, "2.0.0")

    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    records = [json.loads(line) for line in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]]
    analysis = next(r for r in records if r["release_id"] == release_id and r["step"] == "analysis")
    comparison = analysis["evidence"]["comparison"]
    # Both sides' figures: the old colour before the switch, the new one after it.
    assert comparison["baseline"]["colour"] == before.colour
    assert comparison["baseline"]["before_switch"] is True
    assert comparison["baseline"]["requests"] >= 50
    assert 0.1 <= comparison["baseline"]["latency_p50"] < 0.12, comparison
    assert comparison["latency_p50_ratio"]["verdict"] == "critical", comparison
    assert 1.5 < comparison["latency_p50_ratio"]["value"] < 1.9, comparison
    # Under every fixed threshold: only the comparison failed it.
    signals = analysis["evidence"]["signals"]
    assert signals["latency_p95"]["verdict"] == "ok", signals["latency_p95"]
    assert signals["error_rate"]["verdict"] == "ok"


CATALOG_UNIT = "bluegreen-test-catalog"
HOSTS_MARK = "# bluegreen-test-catalog"
DEPENDENCIES = {
    "bluegreen_service_dependencies": [
        {"name": "database", "postgresql": "db1:5432"},
        {"name": "catalog", "http": "http://catalog.lab:9000/", "timeout": 2},
    ]
}


def point_catalog(host: str, address: str | None) -> None:
    """Where `catalog.lab` resolves on `host` (None: nowhere). Docker bind-mounts
    /etc/hosts, so the file is rewritten in place, never replaced."""
    shell(host, f"grep -v '{HOSTS_MARK}' /etc/hosts > /tmp/hosts; cat /tmp/hosts > /etc/hosts")
    if address:
        shell(host, f"echo '{address} catalog.lab {HOSTS_MARK}' >> /etc/hosts")


def break_catalog_once_live(host: str, colour: str, stop: threading.Event) -> threading.Thread:
    """Once traffic is on `colour`, make `host` resolve the catalog to a closed port: the
    new colour loses its dependency after it went live, past the preflight's probe."""

    def watch() -> None:
        while not stop.is_set():
            if live().colour == colour:
                point_catalog(host, "127.0.0.1")
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_dependency_the_new_colour_alone_cannot_reach_is_refused_or_rolled_back() -> None:
    """The service declares its database and a catalog API (an HTTP server on db1).
    1. The idle colour's host cannot reach the catalog before the release: refused in the
       preflight, nothing changed.
    2. The new colour loses it once live: rolled back, naming it.
    3. The catalog is down for both colours: nobody is blamed, no rollback; the release
       goes live unverified saying why."""
    ensure_live("2.0.0")
    before = live()
    idle_colour = "blue" if before.colour == "green" else "green"
    idle, live_host = f"app-{idle_colour}", f"app-{before.colour}"
    db1 = shell(live_host, "getent hosts db1 | cut -d' ' -f1")["stdout"].strip()
    shell("db1", f"systemd-run --unit={CATALOG_UNIT} python3 -m http.server 9000 -d /tmp")
    stop = threading.Event()
    try:
        point_catalog(live_host, db1)
        point_catalog(idle, "127.0.0.1")
        with inventory_vars(LAB, DEPENDENCIES):
            refused = bluegreen("release", "--version", "2.0.11+dependency")
        assert refused.exit_code == 3, refused.report
        assert (
            f"catalog does not answer from the {idle_colour} colour's hosts ({idle}: "
            f"connection refused) while {live_host} of the live colour reach it"
        ) in refused.message, refused.message
        assert "nothing was changed" in refused.message
        assert live().version == "2.0.0"

        point_catalog(idle, db1)
        break_catalog_once_live(idle, idle_colour, stop)
        with SteadyTraffic(), inventory_vars(LAB, DEPENDENCIES):
            blamed = bluegreen("release", "--version", "2.0.11+dependency")

        assert blamed.exit_code == 4, blamed.report
        assert "dependencies: dependencies unreachable from the new colour only 1" in (
            blamed.message
        ), blamed.message
        assert (
            f"catalog (http://catalog.lab:9000/) is unreachable from {idle_colour} "
            f"({idle}: connection refused) while {live_host} of the old colour reach it"
        ) in blamed.message
        assert live().version == "2.0.0"

        # Down for everyone: the catalog stops, and the idle host resolves it again.
        point_catalog(idle, db1)
        shell("db1", f"systemctl stop {CATALOG_UNIT}")
        with SteadyTraffic(), inventory_vars(LAB, DEPENDENCIES):
            everyone = bluegreen("release", "--version", "2.0.11+dependency")

        assert everyone.exit_code == 0, everyone.report
        assert everyone.outcome == "unverified", everyone.message
        assert "catalog (http://catalog.lab:9000/) is down for both colours" in everyone.message
        assert live().version == "2.0.11+dependency"
        release_id = everyone.report["custom_stats"]["bluegreen_release_id"]
        records = [json.loads(x) for x in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]]
        analysis = next(
            r for r in records if r["release_id"] == release_id and r["step"] == "analysis"
        )
        signal = analysis["evidence"]["signals"]["dependencies"]
        assert signal["verdict"] == "inconclusive", signal
        assert "not the release's doing" in signal["reason"]
        # The database answered from both colours all along.
        assert all(host["probes"]["database"] is None for host in signal["hosts"].values())
    finally:
        stop.set()
        shell("db1", f"systemctl stop {CATALOG_UNIT} || true")
        for host in ("app-blue", "app-green"):
            point_catalog(host, None)


def test_a_route_with_levels_of_its_own_is_judged_by_them_and_names_itself() -> None:
    """/work takes 100 ms by design; its own level says 50 ms at the p95, so the release
    is sent back naming the route, while the colour's own latency (its other requests)
    is judged apart."""
    ensure_live("2.0.0")
    before = live()
    routes = {"bluegreen_analysis_routes": [{"route": "/work", "latency_p95": {"critical": 0.05}}]}

    with SteadyTraffic(path="/work?ms=100"), inventory_vars(LAB, routes):
        result = bluegreen("release", "--version", "2.0.11+dependency")

    assert result.exit_code == 4, result.report
    assert "latency_p95[/work]: /work: p95 latency" in result.message, result.message
    assert live().version == before.version
    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    records = [json.loads(x) for x in shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]]
    analysis = next(r for r in records if r["release_id"] == release_id and r["step"] == "analysis")
    route = analysis["evidence"]["signals"]["latency_p95[/work]"]
    # Counted by the load balancer for the named route, whatever the other routes did.
    assert route["requests"] >= 20 and 0.1 <= route["value"] < 0.2, route
    # /work was all the traffic: the colour's own latency has nothing left to judge.
    assert analysis["evidence"]["signals"]["latency_p95"]["value"] is None
    # The warm colour runs a version marked bad now: give it a good one, so that the
    # later tests of this lab that roll back have somewhere to go.
    ensure_live("2.1.0")
