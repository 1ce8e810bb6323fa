"""Fixtures for tests against the lab: real containers, real nginx, PostgreSQL and systemd.

The lab is started once per session (`bluegreen lab up` is idempotent). Tests drive it
the way an operator does, through the `bluegreen` command, and look at outcomes through
nginx on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BLUEGREEN = [sys.executable, "-m", "bluegreen"]
# The two labs under test. A developer can point the suite at copies of them (another
# inventories/<name>/ with other ports) so that two test runs do not share containers.
LAB = os.environ.get("BLUEGREEN_TEST_LAB", "lab")
SINGLE = os.environ.get("BLUEGREEN_TEST_SINGLE", "lab-single")
# The Django example: PostgreSQL on one host, and SQLite on another.
DJANGO = os.environ.get("BLUEGREEN_TEST_DJANGO", "lab-django")
DJANGO_SINGLE = os.environ.get("BLUEGREEN_TEST_DJANGO_SINGLE", "lab-django-single")
INVENTORY_COMMANDS = {
    "release",
    "rollback",
    "status",
    "verify",
    "backup",
    "restore",
    "maintenance",
    "history",
    "lock",
    "report",
}


def published_port(inventory: str, host: str, container_port: int) -> int:
    """The 127.0.0.1 port a lab host publishes for `container_port` (from hosts.yml)."""
    document = yaml.safe_load((ROOT / "inventories" / inventory / "hosts.yml").read_text())
    stack = [document["all"]]
    while stack:
        group = stack.pop()
        for name, variables in (group.get("hosts") or {}).items():
            ports = (variables or {}).get("bluegreen_lab_published_ports") or {}
            if name == host and container_port in ports:
                return int(ports[container_port])
        stack.extend((group.get("children") or {}).values())
    raise LookupError(f"{host} publishes no port {container_port} in inventories/{inventory}")


LAB_URL = f"http://127.0.0.1:{published_port(LAB, 'lb1', 80)}"
SINGLE_URL = f"http://127.0.0.1:{published_port(SINGLE, 'single1', 80)}"
DJANGO_URL = f"http://127.0.0.1:{published_port(DJANGO, 'django1', 80)}"
DJANGO_SINGLE_URL = f"http://127.0.0.1:{published_port(DJANGO_SINGLE, 'django-single1', 80)}"
URLS = {LAB: LAB_URL, SINGLE: SINGLE_URL, DJANGO: DJANGO_URL, DJANGO_SINGLE: DJANGO_SINGLE_URL}
JOURNAL_PATH = "/var/lib/bluegreen/sampleapp/journal.jsonl"


@dataclass
class Outcome:
    exit_code: int
    report: dict

    @property
    def outcome(self) -> str | None:
        return self.report.get("outcome")

    @property
    def message(self) -> str:
        return self.report.get("message") or ""


def bluegreen(*args: str, timeout: float = 600) -> Outcome:
    """Run a bluegreen command with --json and return its exit code and report.

    Commands that act on an inventory get `-i LAB` unless the test names one.
    """
    if args and args[0] in INVENTORY_COMMANDS and not {"-i", "--inventory"} & set(args):
        args = (*args, "-i", LAB)
    completed = subprocess.run(
        [*BLUEGREEN, *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report from bluegreen {args}: {completed.stdout}\n{completed.stderr}"
    return Outcome(completed.returncode, json.loads(lines[-1]))


@dataclass
class Answer:
    """What nginx answered; status 0 when nothing answered at all."""

    status: int
    colour: str | None
    version: str | None
    body: bytes


def request(base: str, path: str = "/", data: dict | None = None) -> Answer:
    """One request through nginx on a new connection."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(
        base + path,
        data=body,
        headers={"Connection": "close", "Content-Type": "application/json"},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return Answer(
                response.status,
                response.headers.get("X-Bluegreen-Colour"),
                response.headers.get("X-Bluegreen-Version"),
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return Answer(
            exc.code,
            exc.headers.get("X-Bluegreen-Colour"),
            exc.headers.get("X-Bluegreen-Version"),
            exc.read(),
        )
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # Nothing listening yet (a fresh lab before its first release) is an answer too.
        return Answer(0, None, None, str(exc).encode())


def ansible(
    host: str, module: str, args: dict, inventory: str = LAB, become_user: str | None = None
) -> dict:
    """Run one module on a lab host (as `become_user` when given); its JSON result."""
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            host,
            "-i",
            f"inventories/{inventory}",
            "-m",
            module,
            "-a",
            json.dumps(args),
            *(["--become", "--become-user", become_user] if become_user else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ
        | {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        },
    )
    document = json.loads(completed.stdout[completed.stdout.index("{") :])
    [result] = [task["hosts"][host] for play in document["plays"] for task in play["tasks"]]
    return result


def shell(host: str, command: str, inventory: str = LAB) -> dict:
    return ansible(host, "ansible.builtin.shell", {"cmd": command}, inventory)


@pytest.fixture(scope="session")
def lab() -> Iterator[None]:
    """The lab, up and with artifacts built (`make integration` builds them)."""
    for version in ("1.0.0", "2.0.0", "2.0.1+crash", "2.0.2+http500"):
        artifact = ROOT / "artifacts" / f"sampleapp-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make artifacts` first")
    completed = subprocess.run(
        [*BLUEGREEN, "lab", "up", LAB, SINGLE], cwd=ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    yield


@pytest.fixture(scope="session")
def django_lab() -> Iterator[None]:
    """The two Django labs, up and with the djangoapp artifacts built."""
    for version in ("1.0.0", "2.0.0"):
        artifact = ROOT / "artifacts" / f"djangoapp-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make artifacts` first")
    completed = subprocess.run(
        [*BLUEGREEN, "lab", "up", DJANGO, DJANGO_SINGLE], cwd=ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    yield


def live(base: str = LAB_URL) -> Answer:
    return request(base, "/")


def ensure_live(version: str, inventory: str = LAB) -> None:
    """Bring the inventory to `version` live (and healthy), whatever ran before."""
    base = URLS[inventory]
    if live(base).version == version:
        return
    result = bluegreen("release", "--version", version, "-i", inventory)
    assert result.exit_code == 0, result.report
    assert live(base).version == version


def wait_until(predicate, timeout: float = 30, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
