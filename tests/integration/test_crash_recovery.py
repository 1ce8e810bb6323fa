"""kill -9 of the controller at each step boundary; the next command converges.

The controller here is the whole `bluegreen` process tree (the CLI, ansible-playbook and
its workers), killed with SIGKILL the moment the controller's journal shows that a step
ended. The tests run in order on the single-host lab, each one's next command being the
one the following test kills later on, so a chain of crashes costs about two releases:

    release B  killed after lock      -> release B: closes it, then killed after plan
    release B: restores the idle colour, then killed after deploy
    release B: restores the idle colour, then killed after switch
    rollback:  sends traffic back (the release had switched)
    release B  killed after analysis  -> release B: judges it again and keeps it

After each crash the test checks what the next command did about it (the journal's
recover record) and that traffic is on a colour running a version a release took live.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    BLUEGREEN,
    ROOT,
    SINGLE,
    SINGLE_URL,
    bluegreen,
    ensure_live,
    live,
    wait_until,
)

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("single"), pytest.mark.usefixtures("lab")]

STABLE, NEXT = "2.0.0", "2.1.0"
JOURNAL = ROOT / "state" / "journal" / SINGLE / "sampleapp.jsonl"


def journal_lines() -> list[dict]:
    if not JOURNAL.exists():
        return []
    records = []
    for line in JOURNAL.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (ansible-runner starts
    ansible-playbook in a session of its own, so a process group is not enough)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(process: subprocess.Popen) -> None:
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)


def killed_after(step: str, *args: str) -> str:
    """Run a bluegreen command and kill it -9 once its journal shows `step` done; the
    release id it had."""
    seen = len(journal_lines())
    process = subprocess.Popen(
        [*BLUEGREEN, *args, "-i", SINGLE, "--json"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    release_id: str | None = None

    def step_done() -> bool:
        nonlocal release_id
        for record in journal_lines()[seen:]:
            if record["step"] == "lock" and record["evidence"].get("command") == args[0]:
                release_id = record["release_id"]
            if record["release_id"] == release_id and record["step"] == step:
                return True
        return process.poll() is not None

    try:
        assert wait_until(step_done, timeout=1200, interval=0.05), f"{step} never came"
        assert process.poll() is None, f"{args} ended before it could be killed after {step}"
    finally:
        kill_tree(process)
    assert release_id is not None
    return release_id


def recovery_of(release_id: str) -> dict:
    [record] = [
        r
        for r in journal_lines()
        if r["step"] == "recover" and r["evidence"].get("recovered_release_id") == release_id
    ]
    return record


def released_versions() -> set[str]:
    """Versions a whole release took live: verified, or unverified on this quiet lab
    (nobody sends traffic, so no analysis can vouch for them), never bad."""
    history = bluegreen("history", "-i", SINGLE, "--limit", "200").report["history"]
    return {
        r["version"]
        for r in history["releases"]
        if r["state"] in ("verified", "unverified") and r["version"]
    }


def assert_converged() -> None:
    """Traffic answers from a version a whole release took live; nobody holds the lock."""
    answer = live(SINGLE_URL)
    assert answer.status == 200, answer
    assert answer.version in released_versions()
    lock = bluegreen("lock", "status", "-i", SINGLE)
    assert lock.outcome == "free", lock.report


def last_interrupted() -> str:
    """The newest release that took the lock and has no end in the journal yet."""
    closed = {
        r["evidence"].get("recovered_release_id") for r in journal_lines() if r["step"] == "recover"
    } | {r["release_id"] for r in journal_lines() if r["step"] in ("release", "rollback")}
    locked = [r["release_id"] for r in journal_lines() if r["step"] == "lock"]
    return next((rid for rid in reversed(locked) if rid not in closed), "")


class State:
    """The release the previous test killed (read back from the journal when run alone)."""

    interrupted: str = ""

    @classmethod
    def take(cls) -> str:
        return cls.interrupted or last_interrupted()


def test_setup_a_verified_release_to_come_back_to() -> None:
    ensure_live(STABLE, inventory=SINGLE)
    assert (
        STABLE in released_versions()
        or bluegreen("release", "--version", STABLE, "-i", SINGLE).exit_code == 0
    )


def other() -> str:
    """The healthy version that is not live: what the next release deploys."""
    return NEXT if live(SINGLE_URL).version == STABLE else STABLE


def test_killed_after_taking_the_lock() -> None:
    before = live(SINGLE_URL).version
    State.interrupted = killed_after("lock", "release", "--version", other())

    # The lock of the dead release is still there ...
    assert bluegreen("lock", "status", "-i", SINGLE).outcome == "locked"
    # ... and the next release takes it over; killed in its turn after its plan.
    first = State.interrupted
    State.interrupted = killed_after("plan", "release", "--version", other())

    assert recovery_of(first)["evidence"]["action"] == "close"
    assert "taking it over" in next(
        r["message"]
        for r in journal_lines()
        if r["release_id"] == State.interrupted and r["step"] == "lock"
    )
    assert live(SINGLE_URL).version == before


def test_killed_after_the_plan_restores_the_idle_colour() -> None:
    first, before = State.take(), live(SINGLE_URL).version
    State.interrupted = killed_after("deploy", "release", "--version", other())

    assert recovery_of(first)["evidence"]["action"] == "restore_idle"
    # Killed after its deploy: the idle colour runs the new version, traffic does not.
    assert live(SINGLE_URL).version == before


def test_killed_after_the_deploy_puts_the_idle_colour_back() -> None:
    first, target = State.take(), other()
    State.interrupted = killed_after("switch", "release", "--version", target)

    assert recovery_of(first)["evidence"]["action"] == "restore_idle"
    assert live(SINGLE_URL).version == target  # this one died right after switching


def test_killed_after_the_switch_a_rollback_sends_traffic_back() -> None:
    interrupted, unverified = State.take(), live(SINGLE_URL).version

    result = bluegreen("rollback", "--allow-unverified", "-i", SINGLE)

    assert result.exit_code == 0, result.report
    assert f"interrupted release {interrupted}" in result.message
    assert recovery_of(interrupted)["evidence"]["action"] == "rollback"
    assert live(SINGLE_URL).version != unverified
    assert_converged()
    history = bluegreen("history", "-i", SINGLE).report["history"]
    interrupted_state = next(r for r in history["releases"] if r["release_id"] == interrupted)
    assert interrupted_state["state"] == "rolled-back"
    assert not interrupted_state["verified"]


def test_killed_after_the_analysis_the_next_release_judges_it_again_and_keeps_it() -> None:
    target = other()
    interrupted = killed_after("analysis", "release", "--version", target)
    assert live(SINGLE_URL).version == target

    result = bluegreen("release", "--version", target, "-i", SINGLE)

    assert result.exit_code == 0, result.report
    assert f"interrupted release {interrupted}" in result.message
    recovered = recovery_of(interrupted)
    assert recovered["evidence"]["action"] == "resume"
    # Judged again on a lab nobody sends traffic to: kept, but unverified.
    assert recovered["evidence"]["state"] == "unverified"
    assert live(SINGLE_URL).version == target
    assert_converged()


def test_a_second_release_is_refused_at_once_and_waits_with_wait() -> None:
    before, target = live(SINGLE_URL).version, other()
    holder = subprocess.Popen(
        [*BLUEGREEN, "release", "--version", target, "-i", SINGLE, "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert wait_until(
            lambda: bluegreen("lock", "status", "-i", SINGLE).outcome == "locked", timeout=600
        )
        refused = bluegreen("release", "--version", before, "-i", SINGLE)

        # Refused at once: the release holding the lock is still running.
        assert holder.poll() is None
        assert refused.exit_code != 0
        assert "is held by" in refused.message and "release" in refused.message
        assert "bluegreen lock break" in refused.message

        waited = bluegreen("release", "--version", before, "-i", SINGLE, "--wait", "20m")
    finally:
        out, _ = holder.communicate(timeout=1200)
    first = json.loads(out.splitlines()[-1])
    assert first["exit_code"] == 0, first
    # The waiting release started after the first one ended, and put `before` back.
    assert waited.exit_code == 0, waited.report
    assert "after waiting" in next(
        r["message"]
        for r in reversed(journal_lines())
        if r["step"] == "lock" and r["evidence"].get("version") == before
    )
    assert live(SINGLE_URL).version == before
