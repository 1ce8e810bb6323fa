"""Release windows, approval and notifications on the lab.

The windows, approval and notification settings are inventory variables; here they are
given as extra vars to the same runner the `bluegreen` command uses (`run_playbook`, then
`verdict` for the exit code), so the lab inventory stays as it is. Notifications go to
receivers on 127.0.0.1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import JOURNAL_PATH, LAB, ROOT, ensure_live, live, shell
from receivers import free_port, receivers

from bluegreen.cli import verdict
from bluegreen.runner import run_playbook

# Group lab, after tests that leave both colours running: these release only the live
# version, and the rollback test needs a warm other colour (first in lab2, on a fresh lab,
# it had none).
pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab"), pytest.mark.usefixtures("lab")]


def live_version() -> str:
    """The version live now (a fresh lab gets 2.0.0 first)."""
    if live().status != 200:
        ensure_live("2.0.0")
    return str(live().version)


def other_than(version: str) -> str:
    return "1.0.0" if version == "2.0.0" else "2.0.0"


def release(version: str, **extravars: Any) -> tuple[int, str, str]:
    """Exit code, message and release id of a release, as `bluegreen release` gives them."""
    result = run_playbook(ROOT, "playbooks/release.yml", {"app_version": version, **extravars}, LAB)
    code, message = verdict("release", result)
    return int(code), message, str(result.custom_stats.get("bluegreen_release_id"))


def window_around_now() -> str:
    """A refused window from an hour ago to an hour from now (UTC), crossing midnight or not."""
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def journal_of(release_id: str) -> list[dict]:
    lines = shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]
    return [r for r in map(json.loads, lines) if r["release_id"] == release_id]


def lock_exists() -> bool:
    return (
        shell("lb1", "test -e /var/lib/bluegreen/sampleapp/lock && echo held || echo free")[
            "stdout"
        ].strip()
        == "held"
    )


def notify_vars(url: str, smtp_port: int) -> dict[str, Any]:
    return {
        "bluegreen_notify_webhook_url": url,
        "bluegreen_notify_email_to": ["releases@example.test"],
        "bluegreen_notify_smtp_host": "127.0.0.1",
        "bluegreen_notify_smtp_port": smtp_port,
        "bluegreen_notify_smtp_secure": "never",
    }


def test_release_inside_a_refused_window_is_refused_and_changes_nothing() -> None:
    other = other_than(live_version())
    before = live()
    window = window_around_now()
    with receivers() as (url, smtp_port, received):
        code, message, release_id = release(
            other,
            bluegreen_policy_refused_windows=[window],
            **notify_vars(url, smtp_port),
        )
        received.wait_for(webhooks=1, mails=1)

    assert code == 3, message
    assert f"refused window {window}" in message
    assert "--force-window" in message and "force_window" in message
    after = live()
    assert (after.colour, after.version) == (before.colour, before.version)
    assert not lock_exists()
    records = journal_of(release_id)
    assert {r["step"] for r in records} == {"policy", "preflight", "release"}
    policy = next(r for r in records if r["step"] == "policy")
    assert policy["outcome"] == "failed" and policy["evidence"]["window"]["refused_by"] == window
    # A refused release never started: only its failure is announced, on both channels.
    assert received.events() == ["failure"]
    assert received.subjects() == [f"[bluegreen] FAILED: release of sampleapp {other} on {LAB}"]


def test_forced_window_and_approval_proceed_and_are_journaled_and_announced() -> None:
    current = live_version()
    refused = window_around_now()
    code, message, _ = release(
        current,
        bluegreen_policy_refused_windows=[refused],
        bluegreen_policy_approval_required=True,
        force_window="INC-42 hotfix",
    )
    assert code == 3 and "--approved-by" in message, message

    with receivers() as (url, smtp_port, received):
        code, message, release_id = release(
            current,
            bluegreen_policy_refused_windows=[refused],
            bluegreen_policy_approval_required=True,
            force_window="INC-42 hotfix",
            approved_by="alice",
            **notify_vars(url, smtp_port),
        )
        received.wait_for(webhooks=2, mails=2)

    assert code == 0, message
    policy = next(r for r in journal_of(release_id) if r["step"] == "policy")
    assert policy["outcome"] == "ok"
    assert policy["evidence"]["forced"] is True
    assert policy["evidence"]["force_reason"] == "INC-42 hotfix"
    assert policy["evidence"]["approved_by"] == "alice"
    assert "window forced: INC-42 hotfix" in policy["message"]
    assert received.events() == ["start", "success"]
    assert [m["To"] for m in received.mails] == ["releases@example.test"] * 2
    assert f"succeeded: release of sampleapp {current}" in received.webhooks[1]["text"]
    assert (
        f"{current} is live" in received.mails[1].get_body(preferencelist=("plain",)).get_content()
    )


def test_a_notification_that_fails_never_fails_the_release() -> None:
    current = live_version()
    closed = free_port()
    code, message, release_id = release(
        current,
        bluegreen_notify_webhook_url=f"http://127.0.0.1:{closed}/hooks/secret-token",
        bluegreen_notify_email_to=["releases@example.test"],
        bluegreen_notify_smtp_host="127.0.0.1",
        bluegreen_notify_smtp_port=closed,
    )
    assert code == 0, message
    notes = [r for r in journal_of(release_id) if r["step"] == "notify"]
    assert [n["evidence"]["event"] for n in notes] == ["start", "success"]
    for note in notes:
        assert note["outcome"] == "info"
        assert {f["channel"] for f in note["evidence"]["failures"]} == {"webhook", "email"}
        assert "secret-token" not in json.dumps(note)


def test_rollback_is_announced_and_never_refused_by_the_windows() -> None:
    live_version()
    before = live()
    with receivers() as (url, smtp_port, received):
        result = run_playbook(
            ROOT,
            "playbooks/rollback.yml",
            {
                "bluegreen_policy_refused_windows": [window_around_now()],
                # The lab's releases run without traffic, so its versions are unverified.
                "bluegreen_recover_allow_unverified": True,
                **notify_vars(url, smtp_port),
            },
            LAB,
        )
        received.wait_for(webhooks=1, mails=1)
    code, message = verdict("rollback", result)
    assert int(code) == 0, message
    assert live().colour != before.colour
    assert received.events() == ["rollback"]
    rollback_id = str(result.custom_stats.get("bluegreen_release_id"))
    policy = next(r for r in journal_of(rollback_id) if r["step"] == "policy")
    assert policy["outcome"] == "ok" and policy["evidence"]["enforced"] is False
    assert "rollback is an emergency" in policy["message"]
    back = run_playbook(
        ROOT, "playbooks/rollback.yml", {"bluegreen_recover_allow_unverified": True}, LAB
    )
    assert int(verdict("rollback", back)[0]) == 0
    assert live().colour == before.colour
