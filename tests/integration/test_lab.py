"""The lab command: idempotent, and shaped by the static inventories."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest
from conftest import BLUEGREEN, LAB, ROOT, SINGLE, published_port

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab"), pytest.mark.usefixtures("lab")]


def lab_containers() -> dict[str, str]:
    client = docker.from_env()
    containers = client.containers.list(filters={"label": "bluegreen.lab"})
    return {
        c.name: c.id for c in containers if c.labels.get("bluegreen.lab.profile") in (LAB, SINGLE)
    }


def test_lab_up_twice_is_harmless() -> None:
    before = lab_containers()

    completed = subprocess.run(
        [*BLUEGREEN, "lab", "up", LAB, SINGLE], cwd=ROOT, capture_output=True, text=True
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert lab_containers() == before


def test_lab_matches_the_static_inventories() -> None:
    completed = subprocess.run(
        [*BLUEGREEN, "lab", "status", LAB, SINGLE, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    rows = {row["name"]: row for row in json.loads(completed.stdout)}
    assert set(rows) == {"lb1", "app-blue", "app-green", "db1", "single1"}
    assert all(row["state"] == "running" and row["ssh"] == "up" for row in rows.values())
    assert rows["lb1"]["published_ports"] == {"80": published_port(LAB, "lb1", 80)}
