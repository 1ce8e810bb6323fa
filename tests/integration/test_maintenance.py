"""Maintenance mode on lab-single: users get 503 and the page, operators keep health and metrics
(the metrics for the load balancer's own networks only).

Only the lab-single inventory is used (nginx on 127.0.0.1:8081).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import JOURNAL_PATH, SINGLE, SINGLE_URL, ansible, bluegreen, live, request, shell

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("single"),
    pytest.mark.usefixtures("lab", "single_site"),
]

INVENTORY = SINGLE
LOCK_PATH = "/var/lib/bluegreen/sampleapp/lock"
CURL = "curl -s -o /dev/null -w '%{http_code}' --max-time 5"


@pytest.fixture(scope="module")
def single_site() -> Iterator[None]:
    """lab-single serving a version, with nginx converged to the current site template.

    Releasing the live version again changes nothing but converges nginx, so the site
    checks the maintenance flag whatever rendered it before.
    """
    version = live(SINGLE_URL).version or "1.0.0"
    converged = bluegreen("release", "--version", version, "-i", INVENTORY)
    assert converged.exit_code == 0, converged.report
    yield
    bluegreen("maintenance", "off", "-i", INVENTORY)


def maintenance(*args: str):
    return bluegreen("maintenance", *args, "-i", INVENTORY, timeout=180)


def retry_after(path: str = "/") -> str | None:
    """The Retry-After header nginx sends for `path`."""
    try:
        with urllib.request.urlopen(SINGLE_URL + path, timeout=10) as response:
            return response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.headers.get("Retry-After")


def note_bodies() -> list[str]:
    answer = request(SINGLE_URL, "/notes?limit=100")
    assert answer.status == 200
    return [note["body"] for note in json.loads(answer.body)["notes"]]


def test_maintenance_answers_users_503_with_the_page_while_health_and_metrics_stay_live() -> None:
    turned_on = maintenance(
        "on", "--retry-after", "120", "--message", "Database upgrade until 14:00 UTC."
    )

    assert turned_on.exit_code == 0, turned_on.report
    assert turned_on.outcome == "maintenance_on"
    page = request(SINGLE_URL, "/")
    assert page.status == 503
    assert b"Under maintenance" in page.body
    assert b"Database upgrade until 14:00 UTC." in page.body
    assert b"try again in about 2 minutes" in page.body
    assert retry_after("/") == "120"
    assert request(SINGLE_URL, "/health").status == 200
    # The service's internals: only the load balancer's own networks read them through
    # nginx, maintenance or not; this client (through Docker's published port) gets 403.
    assert request(SINGLE_URL, "/metrics").status == 403
    on_lb = shell("single1", f"{CURL} http://127.0.0.1/metrics", INVENTORY)["stdout"]
    assert on_lb == "200", on_lb
    write = request(SINGLE_URL, "/notes", {"body": "written during maintenance"})
    assert write.status == 503 and b"Under maintenance" in write.body

    turned_off = maintenance("off")

    assert turned_off.exit_code == 0, turned_off.report
    assert turned_off.outcome == "maintenance_off"
    back = request(SINGLE_URL, "/")
    assert back.status == 200 and back.version is not None
    assert retry_after("/") is None
    assert "written during maintenance" not in note_bodies()


def test_turning_maintenance_on_twice_reports_no_change_the_second_time() -> None:
    first = maintenance("on")
    second = maintenance("on")
    first_off = maintenance("off")
    second_off = maintenance("off")

    assert [run.exit_code for run in (first, second, first_off, second_off)] == [0, 0, 0, 0]
    assert first.report["custom_stats"]["bluegreen_maintenance"]["changed"] is True
    assert second.outcome == "maintenance_on"
    assert second.report["custom_stats"]["bluegreen_maintenance"]["changed"] is False
    assert "already" in second.message
    assert first_off.report["custom_stats"]["bluegreen_maintenance"]["changed"] is True
    assert second_off.report["custom_stats"]["bluegreen_maintenance"]["changed"] is False
    assert request(SINGLE_URL, "/").status == 200


def test_maintenance_toggle_is_journaled_and_leaves_no_lock() -> None:
    turned_on = maintenance("on")
    turned_off = maintenance("off")

    assert (turned_on.exit_code, turned_off.exit_code) == (0, 0)
    tail = shell("single1", f"tail -n 8 {JOURNAL_PATH}", INVENTORY)["stdout"].splitlines()
    # Each toggle also journals the lock it took; its outcome is the maintenance record.
    records = [r for r in map(json.loads, tail) if r["step"] == "maintenance"][-2:]
    assert [(r["step"], r["outcome"], r["evidence"]["state"]) for r in records] == [
        ("maintenance", "ok", "on"),
        ("maintenance", "ok", "off"),
    ]
    assert shell("single1", f"test -e {LOCK_PATH}; echo $?", INVENTORY)["stdout"] == "1"


def test_maintenance_does_not_flip_under_a_release_holding_the_lock() -> None:
    held = ansible(
        "single1",
        "release_lock",
        {"path": LOCK_PATH, "state": "present", "owner": {"user": "release-in-progress"}},
        INVENTORY,
    )
    assert held.get("acquired"), held
    try:
        refused = maintenance("on")
    finally:
        ansible(
            "single1",
            "release_lock",
            {"path": LOCK_PATH, "state": "absent", "lock_id": held["lock_id"]},
            INVENTORY,
        )

    assert refused.exit_code == 1
    assert refused.outcome == "failed"
    assert "release-in-progress" in refused.message
    assert request(SINGLE_URL, "/").status == 200
