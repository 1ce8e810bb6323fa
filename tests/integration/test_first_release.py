"""Releases that fail before the switch leave users where they were, and a changed
environment is applied, on the sample service run as a service of its own ("firstapp",
tests/integration/services/firstapp.yml) on the single-host lab's container, from an
empty SQLite file.

One test, in order, because each release builds on the last: a failed first release
(nothing served before it), the first real release, a refused release (breaking
migration) while 1.0.0 serves, a second release, then a re-release of the warm version
with a changed environment (its after_install hook sees it), a release stopped by a
before_switch hook that fails, and a rollback: the after_switch and after_rollback hooks
run on the colour traffic moved to, in its environment.
"""

from __future__ import annotations

import pytest
from conftest import SINGLE, bluegreen
from side_service import SideService

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("single2"),
    pytest.mark.usefixtures("lab"),
]

SERVICE = SideService("firstapp", SINGLE, "single1", public_port=8091)
HOST = SERVICE.host
APP = SERVICE.name
on_host = SERVICE.on_host
public = SERVICE.public


def main_pid(colour: str) -> int:
    return int(on_host(f"systemctl show -p MainPID --value '{APP}@{colour}'").strip() or 0)


def environ(pid: int) -> dict[str, str]:
    raw = on_host(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def release(version: str, monkeypatch: pytest.MonkeyPatch, mark: str = "one"):
    monkeypatch.setenv("BLUEGREEN_TEST_RELEASE_MARK", mark)
    return bluegreen("release", "--version", version, "-i", SERVICE.inventory)


def test_failures_before_the_switch_leave_users_where_they_were_and_env_changes_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SERVICE.clear()

    # A first release whose migration fails inside the SQLite maintenance window: there
    # was nothing to serve before, so there is no live colour to wait for, and the window
    # must close (users were never served by firstapp; they must not get 503 from now on).
    failed = release("2.0.5+migfail", monkeypatch)
    assert failed.exit_code == 3, failed.report
    assert failed.outcome == "failed_before_switch"
    assert failed.message.startswith(f"migrate failed on {HOST}"), failed.message
    assert not SERVICE.maintenance_on()
    assert public()[0] == 502, "nginx must still have nothing to serve, not the maintenance page"
    assert "stayed on" not in failed.message and "stays warm" not in failed.message
    assert "nothing was serving" in failed.message, failed.message

    # The first real release after it works.
    first = release("1.0.0", monkeypatch)
    assert first.exit_code == 0, first.report
    status, live_colour, version = public()
    assert (status, version) == (200, "1.0.0")

    # 2.0.0 goes live; 1.0.0 stays warm on the other colour, started with mark "one".
    second = release("2.0.0", monkeypatch)
    assert second.exit_code == 0, second.report
    warm = live_colour
    assert environ(main_pid(warm))["RELEASE_MARK"] == "one"

    # Re-releasing the warm 1.0.0 with a changed environment restarts that colour with
    # it (the SQLite plan renders the env file first, which used to hide the change).
    changed = release("1.0.0", monkeypatch, mark="two")
    assert changed.exit_code == 0, changed.report
    status, colour, version = public()
    assert (status, colour, version) == (200, warm, "1.0.0")
    running = environ(main_pid(warm))
    assert running["RELEASE_MARK"] == "two"
    deploy = SERVICE.journal(changed.report["custom_stats"]["bluegreen_release_id"])["deploy"]
    checksum = on_host(f"cat /opt/{APP}/colours/.{warm}.config-sha256").strip()
    assert deploy["evidence"]["config_sha256"] == {HOST: checksum}
    # Its after_install hook ran in the colour's new environment, before the start.
    assert on_host(f"cat /var/lib/{APP}/hook-mark-{warm}").strip() == "two"

    # The live version again, with another environment: not "unchanged" any more. It is
    # deployed to the idle colour with the new environment, and traffic moves there.
    again = release("1.0.0", monkeypatch, mark="three")
    assert again.exit_code == 0, again.report
    # Its inventory switches the analysis off: live, but nothing vouches for it.
    assert again.outcome == "unverified", again.report
    status, colour, version = public()
    assert (status, version) == (200, "1.0.0") and colour != warm
    assert environ(main_pid(colour))["RELEASE_MARK"] == "three"
    again_steps = SERVICE.journal(again.report["custom_stats"]["bluegreen_release_id"])
    assert again_steps["plan"]["evidence"]["reconfigured"] == [HOST], again_steps["plan"]
    # Its after_switch hook ran on the colour traffic moved to, in that colour's environment.
    assert on_host(f"cat /var/lib/{APP}/after-switch-{colour}").strip() == "three"
    hook = again_steps["hook"]["evidence"]
    assert (hook["name"], hook["ok"]) == ("mark-after-switch", True), hook
    warm = colour

    # A breaking migration (2.0.6 drops the column 2.0.0 added, which the live schema
    # has) is refused before the maintenance window opens: no 503 for anyone, and the
    # live colour is never stopped (a restore on SQLite stops every colour).
    pid_before = main_pid(warm)
    refused = release("2.0.6+breaking", monkeypatch, mark="three")
    assert refused.exit_code == 3, refused.report
    assert refused.message.startswith(f"deploy failed on {HOST}"), refused.message
    assert "refusing to upgrade" in refused.message and "breaking" in refused.message
    steps = SERVICE.journal(refused.report["custom_stats"]["bluegreen_release_id"])
    assert "restore" not in steps, steps
    assert main_pid(warm) == pid_before
    assert public() == (200, warm, "1.0.0")
    assert not SERVICE.maintenance_on()

    # A before_switch hook that fails (firstapp.yml: it refuses the mark "hookfail") stops
    # the release as a failed health check does: the idle colour goes back, traffic stays.
    hooked = release("2.0.0", monkeypatch, mark="hookfail")
    assert hooked.exit_code == 3, hooked.report
    assert hooked.outcome == "failed_before_switch", hooked.report
    assert "before_switch hook refuse-hookfail failed on" in hooked.message, hooked.message
    assert "release mark hookfail refused" in hooked.message, hooked.message
    assert public() == (200, warm, "1.0.0")
    steps = SERVICE.journal(hooked.report["custom_stats"]["bluegreen_release_id"])
    assert "switch" not in steps, steps
    hook = steps["hook"]["evidence"]
    assert (hook["name"], hook["ok"], hook["exit_code"]) == ("refuse-hookfail", False, 1), hook
    idle = "blue" if warm == "green" else "green"
    assert on_host(f"cat /var/lib/{APP}/hook-mark-{idle}").strip() == "hookfail"

    # A rollback to the other colour (its 1.0.0 went live unverified, as the analysis is
    # off here): the after_rollback hook runs there, in that colour's environment.
    back = bluegreen("rollback", "--allow-unverified", "-i", SERVICE.inventory)
    assert back.exit_code == 0, back.report
    assert public() == (200, idle, "1.0.0")
    mark = environ(main_pid(idle))["RELEASE_MARK"]
    assert on_host(f"cat /var/lib/{APP}/after-rollback-{idle}").strip() == mark
    hook = SERVICE.journal(back.report["custom_stats"]["bluegreen_release_id"])["hook"]["evidence"]
    assert (hook["name"], hook["ok"]) == ("mark-after-rollback", True), hook
