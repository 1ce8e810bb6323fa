"""Restore to a named snapshot on the SQLite single host: refused without confirmation,
done under maintenance mode with it."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import JOURNAL_PATH, ROOT, SINGLE, SINGLE_URL, bluegreen, live, request, shell

sys.path.insert(0, str(ROOT / "bench"))

from _load import Writer

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]


def note(body: str) -> int:
    answer = request(SINGLE_URL, "/notes", {"body": body})
    assert answer.status == 201, answer.body
    return json.loads(answer.body)["id"]


def body_of(note_id: int) -> str | None:
    answer = request(SINGLE_URL, f"/notes/{note_id}")
    return json.loads(answer.body)["body"] if answer.status == 200 else None


def test_restore_refuses_without_yes_then_restores_under_maintenance() -> None:
    if live(SINGLE_URL).status != 200:
        assert bluegreen("release", "--version", "1.0.0", "-i", SINGLE).exit_code == 0
    kept = note("before the snapshot")
    backup = bluegreen("backup", "-i", SINGLE)
    assert backup.exit_code == 0, backup.report
    snapshot_id = backup.report["custom_stats"]["bluegreen_snapshot"]["id"]
    later = note("after the snapshot")

    listed = bluegreen("restore", "--list", "-i", SINGLE)
    assert listed.exit_code == 0, listed.report
    [row] = [s for s in listed.report["snapshots"] if s["snapshot_id"] == snapshot_id]
    assert row["verified"] is True and len(row["checksum"]) == 64

    refused = bluegreen("restore", snapshot_id, "-i", SINGLE)
    assert refused.exit_code == 2, refused.report
    assert refused.outcome == "refused"
    assert "would be lost" in refused.message and f"restore {snapshot_id} --yes" in refused.message
    assert body_of(later) == "after the snapshot"  # nothing changed

    with Writer(SINGLE_URL, tag="during-restore") as writer_during_restore:
        restored = bluegreen("restore", snapshot_id, "--yes", "-i", SINGLE)
    assert restored.exit_code == 0, restored.report
    assert restored.outcome == "restored"
    assert body_of(kept) == "before the snapshot"
    assert body_of(later) != "after the snapshot"
    assert request(SINGLE_URL, "/").status == 200  # maintenance mode is off again

    assert any(w.status == 503 and w.retry_after for w in writer_during_restore.writes)

    restore_id = restored.report["custom_stats"]["bluegreen_release_id"]
    journal = shell("single1", f"cat {JOURNAL_PATH}", SINGLE)["stdout"].splitlines()
    records = [json.loads(line) for line in journal if line.startswith("{")]
    restore_steps = [r for r in records if r["release_id"] == restore_id and r["step"] == "restore"]
    assert any(r["evidence"].get("snapshot_id") == snapshot_id for r in restore_steps)


def test_an_unknown_snapshot_is_bad_input_and_changes_nothing() -> None:
    journal_before = shell("single1", f"wc -l < {JOURNAL_PATH}", SINGLE)["stdout"]
    refused = bluegreen("restore", "NOPE", "--yes", "-i", SINGLE)

    assert refused.exit_code == 2, refused.report
    assert refused.outcome == "refused"
    assert "there is no complete snapshot NOPE" in refused.message
    assert "Nothing was changed" in refused.message
    # No lock taken, no maintenance window, nothing journaled on the load balancer.
    assert shell("single1", f"wc -l < {JOURNAL_PATH}", SINGLE)["stdout"] == journal_before
    assert request(SINGLE_URL, "/").status == 200
