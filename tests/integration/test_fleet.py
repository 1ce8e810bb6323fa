"""A fleet: two load balancers, three app hosts per colour, PostgreSQL on its own host
(inventories/lab-fleet). A release installs on every idle host, gates each one, and
switches both load balancers once; one idle host whose colour cannot start stops the
release before the switch, naming that host, and traffic stays where it was. With
--serial the idle hosts are deployed a batch at a time: a failed batch leaves the later
ones untouched while users are served throughout."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import (
    SteadyTraffic,
    bluegreen,
    inventory_vars,
    labs_up,
    live,
    published_port,
    shell,
)

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("fleet")]

FLEET = "lab-fleet"
LB_URLS = [f"http://127.0.0.1:{published_port(FLEET, lb, 80)}" for lb in ("lb1", "lb2")]
PORTS = {"blue": 8001, "green": 8002}


@pytest.fixture(scope="module")
def fleet() -> None:
    labs_up(FLEET)


def journal(release_id: str) -> list[dict]:
    """The journal records of one release, from the first load balancer."""
    lines = shell("lb1", "cat /var/lib/bluegreen/sampleapp/journal.jsonl", FLEET)["stdout"]
    records = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [record for record in records if record["release_id"] == release_id]


def colour_run(host: str, colour: str) -> str:
    """The colour's release link and its unit's current run on the host: what a deploy
    (or putting a colour back) changes."""
    return shell(
        host,
        f"readlink /opt/sampleapp/colours/{colour}; "
        f"systemctl show -p InvocationID --value sampleapp@{colour}",
        FLEET,
    )["stdout"]


def idle_version(host: str, colour: str) -> str | None:
    """The version the colour answers with on the host itself, None when it does not."""
    answer = shell(host, f"curl -s localhost:{PORTS[colour]}/health", FLEET)
    try:
        return json.loads(answer["stdout"] or "{}").get("version")
    except ValueError:
        return None


def serving() -> list[tuple[int, str | None, str | None]]:
    """What each load balancer answers: (status, colour, version)."""
    return [(a.status, a.colour, a.version) for a in map(live, LB_URLS)]


def test_one_idle_host_that_cannot_start_stops_a_serial_fleet_release_before_the_switch(
    fleet: None,
) -> None:
    first = bluegreen("release", "--version", "1.0.0", "-i", FLEET)
    assert first.exit_code == 0, first.report
    live_colour = live(LB_URLS[0]).colour
    assert live_colour in PORTS
    assert serving() == [(200, live_colour, "1.0.0")] * 2
    # Every host of the live colour runs it, each answering on its own.
    for number in (1, 2, 3):
        host = f"app-{live_colour}-{number}"
        answer = shell(host, f"curl -s localhost:{PORTS[live_colour]}/health", FLEET)
        health = json.loads(answer["stdout"] or "{}")
        assert (health.get("version"), health.get("colour")) == ("1.0.0", live_colour), host

    idle = "green" if live_colour == "blue" else "blue"
    broken = f"app-{idle}-2"
    ran_before = idle_version(f"app-{idle}-1", idle)
    before = {number: colour_run(f"app-{idle}-{number}", idle) for number in (1, 2, 3)}
    # Another process holds the idle colour's port on one host (the colour's own unit,
    # warm from an earlier release, stopped first): its unit crashes at start.
    # Under the suite's load the server may take seconds to bind: wait for the port (up
    # to 30 s), and free it whatever happens, or the next tests find it taken.
    port = PORTS[idle]
    try:
        taken = shell(
            broken,
            f"systemctl stop sampleapp@{idle}; "
            f"setsid nohup python3 -m http.server {port} >/dev/null 2>&1 & "
            f"for _ in $(seq 150); do ss -ltnH '( sport = :{port} )' | grep -q . && break; "
            f"sleep 0.2; done; ss -ltnpH '( sport = :{port} )'",
            FLEET,
        )
        assert "python3" in taken["stdout"] and "gunicorn" not in taken["stdout"], taken
        # One idle host at a time: app-<idle>-1 is deployed and gated, -2 fails, and -3 is
        # never touched; users, on the live colour through both load balancers, are
        # answered all along.
        with SteadyTraffic(clients=1, per_second=20, urls=LB_URLS) as users:
            failed = bluegreen("release", "--version", "2.0.0", "--serial", "1", "-i", FLEET)
    finally:
        shell(broken, "pkill -f 'http.server' || true", FLEET)

    assert (failed.exit_code, failed.outcome) == (3, "failed_before_switch"), failed.report
    assert "Traffic was not switched" in failed.message, failed.message
    assert f"deploy failed on {broken}" in failed.message, failed.message
    assert "Address already in use" in failed.message, failed.message
    # Both load balancers still send everyone to the old colour.
    assert serving() == [(200, live_colour, "1.0.0")] * 2
    assert users.answers and set(users.answers) == {(200, "1.0.0")}, users.summary()
    after = {number: colour_run(f"app-{idle}-{number}", idle) for number in (1, 2, 3)}
    assert after[3] == before[3], (before, after)  # the third batch never started
    # The journal: the first batch deployed and gated, the second failed, nothing after.
    deploys = [
        (r["outcome"], sorted(r["evidence"].get("config_sha256") or {}) or r.get("host"))
        for r in journal(failed.report["custom_stats"]["bluegreen_release_id"])
        if r["step"] == "deploy"
    ]
    assert deploys == [("ok", [f"app-{idle}-1"]), ("failed", broken)], deploys
    # The first batch had deployed 2.0.0: it went back to what it ran (on a fresh lab,
    # nothing: then it keeps 2.0.0, warm and unused).
    assert idle_version(f"app-{idle}-1", idle) == (ran_before or "2.0.0")


FLAG = "/etc/nginx/bluegreen/sampleapp.green-live"


def flags() -> list[bool]:
    """Whether each load balancer's flag routes to green."""
    return [shell(lb, f"test -e {FLAG}", FLEET)["rc"] == 0 for lb in ("lb1", "lb2")]


def test_a_switch_that_fails_on_lb2_leaves_both_load_balancers_on_the_old_colour(
    fleet: None,
) -> None:
    released = bluegreen("release", "--version", "2.0.0", "-i", FLEET)
    assert released.exit_code == 0, released.report
    live_colour = live(LB_URLS[0]).colour
    assert serving() == [(200, live_colour, "2.0.0")] * 2
    before = flags()

    # lb2's nginx is down when the rollback switches: lb1 switches, lb2's probe fails.
    shell("lb2", "systemctl stop nginx", FLEET)
    try:
        failed = bluegreen("rollback", "--allow-unverified", "-i", FLEET)
    finally:
        shell("lb2", "systemctl start nginx", FLEET)

    assert failed.exit_code != 0, failed.report
    assert "lb2" in failed.message, failed.message
    assert "sent back" in failed.message, failed.message
    assert flags() == before
    assert serving() == [(200, live_colour, "2.0.0")] * 2


def test_an_unreachable_load_balancer_stops_the_release_before_any_switch(fleet: None) -> None:
    before = serving()
    flags_before = flags()
    assert before[0][2] == "2.0.0"

    # Unreachable as a host whose network went away is: no new SSH connection, and none
    # left open either (a controller keeps its SSH master connections for a while).
    shell("lb2", "systemctl stop ssh.socket ssh.service; pkill -x sshd || true", FLEET)
    try:
        failed = bluegreen("release", "--version", "1.0.0", "-i", FLEET)
    finally:
        shell("lb2", "systemctl start ssh.service", FLEET)

    assert failed.exit_code == 3, failed.report
    assert "lb2" in failed.message, failed.message
    assert "none was switched" in failed.message, failed.message
    assert flags() == flags_before
    assert serving() == before


def test_a_broken_nginx_configuration_on_lb2_is_refused_naming_it(fleet: None) -> None:
    before = serving()

    shell("lb2", "echo 'not nginx;' > /etc/nginx/conf.d/zz-broken.conf", FLEET)
    try:
        failed = bluegreen("release", "--version", "1.0.0", "-i", FLEET)
    finally:
        shell("lb2", "rm -f /etc/nginx/conf.d/zz-broken.conf", FLEET)

    assert failed.exit_code == 3, failed.report
    assert "nginx -t fails on lb2" in failed.message, failed.message
    assert serving() == before


@contextlib.contextmanager
def promoted_at_the_end() -> Iterator[None]:
    """Whatever the test found, no paused release holds the fleet's lock afterwards."""
    try:
        yield
    finally:
        if bluegreen("lock", "status", "-i", FLEET).outcome == "locked":
            bluegreen("promote", "-i", FLEET)


def test_a_production_fleet_pauses_an_unmeasured_release_until_promoted(fleet: None) -> None:
    before = live(LB_URLS[0]).version
    target = "1.0.0" if before == "2.0.0" else "2.0.0"
    nothing = bluegreen("promote", "-i", FLEET)
    assert nothing.exit_code == 2 and "nothing is paused" in nothing.message, nothing.report

    with inventory_vars(FLEET, {"bluegreen_service_production": True}), promoted_at_the_end():
        paused = bluegreen("release", "--version", target, "-i", FLEET)  # nobody sends traffic

        assert paused.exit_code == 5, paused.report
        assert paused.outcome == "paused" and "bluegreen promote" in paused.message
        colour = live(LB_URLS[0]).colour
        assert serving() == [(200, colour, target)] * 2  # live on both, held for a person
        release_id = paused.report["custom_stats"]["bluegreen_release_id"]
        assert bluegreen("lock", "status", "-i", FLEET).outcome == "locked"
        # No other release starts meanwhile, and it says why.
        blocked = bluegreen("release", "--version", str(before), "-i", FLEET)
        assert blocked.exit_code == 3, blocked.report
        assert "PAUSED" in blocked.message and "bluegreen promote" in blocked.message
        assert serving() == [(200, colour, target)] * 2

        promoted = bluegreen("promote", "-i", FLEET)

    assert promoted.exit_code == 0, promoted.report
    assert promoted.outcome == "promoted" and release_id in promoted.message
    assert bluegreen("lock", "status", "-i", FLEET).outcome == "free"
    history = bluegreen("history", "-i", FLEET).report["history"]
    row = next(r for r in history["releases"] if r["release_id"] == release_id)
    assert row["state"] == "promoted"
    assert target not in history["rollback_refused_versions"]


class CanaryClients:
    """Virtual clients, each with its own canary cookie, asking for 20 ms of work through
    both load balancers on new connections until stopped; every answer is kept with its
    client. (Work of a known length: at whole milliseconds, `/`'s 1 or 2 ms cannot show a
    service twice as slow as twice as slow.)"""

    # 30 requests/s: enough for a 10 % step to be judged on 30 of the new colour's in 10 s,
    # little enough that the other groups' labs on the same two cores do not feel it.
    def __init__(self, clients: int = 300, threads: int = 4, per_second: float = 30) -> None:
        self.clients = clients
        self.stop = threading.Event()
        self.interval = threads / per_second
        self.answers: list[tuple[float, int, int, str | None, str | None]] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(n, threads), daemon=True)
            for n in range(threads)
        ]

    def run(self, first: int, step: int) -> None:
        client, deadline = first, time.monotonic() + 900
        while not self.stop.is_set() and time.monotonic() < deadline:
            base = LB_URLS[client % 2]
            headers = {"Connection": "close", "Cookie": f"bluegreen_sampleapp=client-{client}"}
            try:
                request = urllib.request.Request(base + "/work?ms=20", headers=headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = (response.status, response.headers.get("X-Bluegreen-Version"))
            except urllib.error.HTTPError as exc:
                answer = (exc.code, None)
            except OSError:
                answer = (0, None)
            with self.lock:
                self.answers.append((time.time(), client, answer[0], answer[1], base))
            client = (client + step) % self.clients
            time.sleep(self.interval)

    def versions_by_client(self) -> dict[int, list[str | None]]:
        """Each client's versions in the order it saw them."""
        seen: dict[int, list[str | None]] = {}
        for _at, client, _status, version, _base in sorted(self.answers):
            seen.setdefault(client, []).append(version)
        return seen

    def __enter__(self) -> CanaryClients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


# Short steps; a loaded CI machine may send fewer requests than asked, so a step needs 20
# of the new colour's (a 2x slower build is told from 20 with p far below 0.01).
CANARY = {"bluegreen_analysis_canary_interval": 10, "bluegreen_analysis_canary_min_requests": 20}


def canary_records(release_id: str) -> list[dict]:
    # A step's verdict (a failed step is also recorded as the failure of each load balancer).
    return [r for r in journal(release_id) if r["step"] == "canary" and "percent" in r["evidence"]]


def canary_files() -> list[str]:
    """The canary's files left on each load balancer ('' for none); its empty folders,
    kept from an earlier canary, are not files."""
    listing = "find /etc/nginx/bluegreen/sampleapp.canary -type f 2>/dev/null || true"
    return [shell(lb, listing, FLEET)["stdout"].strip() for lb in ("lb1", "lb2")]


def test_a_canary_stops_a_version_twice_as_slow_at_its_first_step(fleet: None) -> None:
    before = live(LB_URLS[0])
    assert before.version in ("1.0.0", "2.0.0")

    with inventory_vars(FLEET, CANARY), CanaryClients() as clients:
        stopped = bluegreen(
            "release", "--version", "2.0.12+lag100", "--canary", "10,50", "-i", FLEET
        )

    # Under every fixed threshold (a few milliseconds more), yet twice the old colour's time.
    assert (stopped.exit_code, stopped.outcome) == (4, "rolled_back"), stopped.report
    assert "canary step 10 %" in stopped.message, stopped.message
    assert "Mann-Whitney U" in stopped.message and "n=" in stopped.message, stopped.message
    steps = canary_records(stopped.report["custom_stats"]["bluegreen_release_id"])
    assert [(r["evidence"]["percent"], r["outcome"]) for r in steps] == [(10, "failed")], steps
    latency = steps[0]["evidence"]["tests"][0]
    assert latency["verdict"] == "fail" and latency["p_value"] < 0.01, latency
    assert serving() == [(200, before.colour, before.version)] * 2
    assert canary_files() == ["", ""]
    # The slow version served only its share, and only while the step lasted.
    slow = [a for a in clients.answers if a[3] == "2.0.12+lag100"]
    assert 0 < len(slow) < 0.25 * len(clients.answers), (len(slow), len(clients.answers))
    assert all(status == 200 for _at, _client, status, _version, _base in clients.answers)


def test_a_canary_takes_a_healthy_version_through_every_step_each_client_on_one_side(
    fleet: None,
) -> None:
    before = live(LB_URLS[0]).version
    target = "1.0.0" if before == "2.0.0" else "2.0.0"

    with inventory_vars(FLEET, CANARY), CanaryClients() as clients:
        released = bluegreen("release", "--version", target, "--canary", "10,50", "-i", FLEET)

    assert released.exit_code == 0, released.report
    steps = canary_records(released.report["custom_stats"]["bluegreen_release_id"])
    assert [(r["evidence"]["percent"], r["outcome"]) for r in steps] == [(10, "ok"), (50, "ok")]
    for record in steps:
        share = record["evidence"]["share_measured"]
        assert abs(share - record["evidence"]["percent"]) <= 10, record["evidence"]
    assert [answer[2] for answer in serving()] == [target] * 2
    assert canary_files() == ["", ""]
    # Sticky: a client that reached the new version never went back to the old one.
    for client, versions in clients.versions_by_client().items():
        first_new = versions.index(target) if target in versions else len(versions)
        assert before not in versions[first_new:], (client, versions)
    assert all(status == 200 for _at, _client, status, _version, _base in clients.answers)


def test_a_release_held_before_its_switch_waits_for_promote_or_abort(fleet: None) -> None:
    before = live(LB_URLS[0])
    target = "1.0.0" if before.version == "2.0.0" else "2.0.0"
    idle = "green" if before.colour == "blue" else "blue"

    held = bluegreen("release", "--version", target, "--pause-before-switch", "-i", FLEET)

    assert (held.exit_code, held.outcome) == (5, "held"), held.report
    assert "HELD before its switch" in held.message and "bluegreen abort" in held.message
    assert serving() == [(200, before.colour, before.version)] * 2  # nobody sees it yet
    health = json.loads(
        shell(f"app-{idle}-1", f"curl -s localhost:{PORTS[idle]}/health", FLEET)["stdout"]
    )
    assert health["version"] == target  # deployed, checked and judged, waiting
    assert bluegreen("lock", "status", "-i", FLEET).outcome == "locked"
    # A rollback has nothing of it to undo: refused, naming the two ways out.
    refused = bluegreen("rollback", "-i", FLEET)
    assert refused.exit_code == 3 and "bluegreen promote" in refused.message, refused.report
    assert "bluegreen abort" in refused.message

    promoted = bluegreen("promote", "-i", FLEET)

    # It goes on as the release it is: switched, then judged (nobody sends traffic here).
    assert promoted.exit_code == 0, promoted.report
    assert promoted.outcome in ("released", "unverified"), promoted.report
    assert serving() == [(200, idle, target)] * 2
    assert bluegreen("lock", "status", "-i", FLEET).outcome == "free"
    release_id = held.report["custom_stats"]["bluegreen_release_id"]
    history = bluegreen("history", "-i", FLEET).report["history"]
    row = next(r for r in history["releases"] if r["release_id"] == release_id)
    assert row["state"] in ("verified", "unverified"), row

    # Held again, and ended by a person instead: traffic never moves.
    again = bluegreen(
        "release", "--version", str(before.version), "--pause-before-switch", "-i", FLEET
    )
    assert (again.exit_code, again.outcome) == (5, "held"), again.report
    aborted = bluegreen("abort", "-i", FLEET)
    assert (aborted.exit_code, aborted.outcome) == (0, "aborted"), aborted.report
    assert serving() == [(200, idle, target)] * 2
    assert bluegreen("lock", "status", "-i", FLEET).outcome == "free"
    nothing = bluegreen("promote", "-i", FLEET)
    assert nothing.exit_code == 2 and "nothing is paused or held" in nothing.message
    history = bluegreen("history", "-i", FLEET).report["history"]
    again_id = again.report["custom_stats"]["bluegreen_release_id"]
    assert next(r for r in history["releases"] if r["release_id"] == again_id)["state"] == "aborted"
