"""One host running nginx and both colours on two ports, sharing one SQLite file."""

from __future__ import annotations

import json

import pytest
from conftest import SINGLE, SINGLE_URL, bluegreen, ensure_live, live, request, shell

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("single"), pytest.mark.usefixtures("lab")]


def test_single_host_releases_and_rolls_back_with_sqlite_shared_by_both_colours() -> None:
    ensure_live("1.0.0", inventory=SINGLE)
    before = live(SINGLE_URL)
    created = request(SINGLE_URL, "/notes", {"body": "kept across colours"})
    assert created.status == 201
    note_id = json.loads(created.body)["id"]

    released = bluegreen("release", "--version", "2.0.0", "-i", SINGLE)

    assert released.exit_code == 0, released.report
    after = live(SINGLE_URL)
    assert (after.version, after.colour) == (
        "2.0.0",
        "blue" if before.colour == "green" else "green",
    )
    read = request(SINGLE_URL, f"/notes/{note_id}")
    assert read.status == 200 and json.loads(read.body)["body"] == "kept across colours"
    ports = shell("single1", "ss -ltnH '( sport = :8001 or sport = :8002 )' | wc -l", SINGLE)
    assert ports["stdout"].strip() == "2"

    rolled_back = bluegreen("rollback", "-i", SINGLE)

    assert rolled_back.exit_code == 0, rolled_back.report
    assert live(SINGLE_URL).colour == before.colour
    assert (
        json.loads(request(SINGLE_URL, f"/notes/{note_id}").body)["body"] == "kept across colours"
    )
