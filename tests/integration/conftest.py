"""Fixtures for tests against the lab: real containers, real nginx, PostgreSQL and systemd.

The lab is started once per session (`bluegreen lab up` is idempotent). Tests drive it
the way an operator does, through the `bluegreen` command, and look at outcomes through
nginx on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cpu_use
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
    "promote",
    "abort",
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
    children_before = cpu_use.process_cpu_s()
    started = time.monotonic()
    completed = subprocess.run(
        [*BLUEGREEN, *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    cpu_use.record(
        cpu_use.group_of_this_run(),
        {
            "command": " ".join(args),
            "test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
            "wall_s": round(time.monotonic() - started, 2),
            "process_cpu_s": round(cpu_use.process_cpu_s() - children_before, 2),
        },
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
    """Run a shell command as root on a lab host: its rc, stdout (without the last newline,
    as Ansible's shell module gives it), stdout_lines and stderr.

    Through `docker exec` into the host's container (bluegreen-<inventory>-<host>): a
    test's own look at a host is not what it tests, and an ad-hoc Ansible run for it cost
    about half a second of the suite's two cores each time."""
    container = f"bluegreen-{Path(inventory).name}-{host}"
    completed = subprocess.run(
        ["docker", "exec", "-w", "/root", container, "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    stdout = completed.stdout.removesuffix("\n")
    return {
        "rc": completed.returncode,
        "stdout": stdout,
        "stdout_lines": stdout.splitlines(),
        "stderr": completed.stderr.removesuffix("\n"),
    }


@pytest.fixture(scope="session")
def lab() -> Iterator[None]:
    """The lab, up and with artifacts built (`make integration` builds them)."""
    for version in (
        "1.0.0",
        "2.0.0",
        "2.0.1+crash",
        "2.0.2+http500",
        "2.0.3+errors30.after200req",
        "2.0.4+slow1500",
    ):
        artifact = ROOT / "artifacts" / f"sampleapp-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make artifacts` first")
    labs_up(LAB, SINGLE)
    yield


def labs_up(*names: str) -> None:
    """`bluegreen lab up` the labs (a lab already up is left as it is)."""
    completed = subprocess.run(
        [*BLUEGREEN, "lab", "up", *names], cwd=ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="session")
def django_lab() -> Iterator[None]:
    """The two Django labs, up and with the djangoapp artifacts built."""
    for version in ("1.0.0", "2.0.0"):
        artifact = ROOT / "artifacts" / f"djangoapp-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make artifacts` first")
    labs_up(DJANGO, DJANGO_SINGLE)
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


class SteadyTraffic:
    """A few clients reading through nginx until stopped (bounded in time), in turn
    through each of ``urls`` (the lab's load balancer by default); every answer is kept
    as (status, version), 0 for none."""

    def __init__(
        self,
        clients: int = 3,
        per_second: float = 15,
        limit_s: float = 900,
        path: str = "/",
        urls: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.urls = list(urls) or [LAB_URL]
        self.answers: list[tuple[int, str | None]] = []
        self.stop = threading.Event()
        self.deadline = time.monotonic() + limit_s
        self.interval = 1 / per_second
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        count = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            answer = request(self.urls[count % len(self.urls)], self.path)
            self.answers.append((answer.status, answer.version))
            count += 1
            time.sleep(self.interval)

    def summary(self) -> dict[str, int]:
        """How many answers of each status and version."""
        return dict(Counter(f"{status} {version}" for status, version in self.answers))

    def __enter__(self) -> SteadyTraffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


@contextmanager
def inventory_vars(inventory: str, values: dict) -> Iterator[None]:
    """Variables for every host of `inventory` (a group_vars/all file) while the block runs,
    as a team sets them in its inventory."""
    path = ROOT / "inventories" / inventory / "group_vars" / "all" / "zz-test.yml"
    path.write_text(yaml.safe_dump(values))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def wait_until(predicate, timeout: float = 30, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- running the labs side by side ---------------------------------------------------
# `make integration` runs one pytest process per lab group at once (-m group_lab,
# group_lab2, ...): tests of different labs overlap, tests of one lab never
# do (they would refuse each other at the release lock). A test's group is its
# lab_group mark, else the lab its parameters name (a test parametrized over two labs
# lands in both groups), else the labs its function names, else its module's, else LAB.
LAB_GROUPS = {LAB: "lab", SINGLE: "single", DJANGO: "django", DJANGO_SINGLE: "django"}
# lab2 and single2 hold tests marked for them; `make integration` runs those groups with
# BLUEGREEN_TEST_LAB / BLUEGREEN_TEST_SINGLE naming second copies of the two labs.
GROUPS = ("lab", "lab2", "single", "single2", "django", "fleet")


def _labs_named_by(value: object) -> set[str]:
    fields = value if isinstance(value, tuple | list) else getattr(value, "__dict__", {}).values()
    candidates = [value, *fields] if isinstance(value, str) else list(fields)
    return {c for c in candidates if isinstance(c, str) and c in LAB_GROUPS}


def lab_group(item: pytest.Item) -> str:
    marked = item.get_closest_marker("lab_group")
    if marked is not None:
        return str(marked.args[0])
    callspec = getattr(item, "callspec", None)
    named: set[str] = set()
    for value in callspec.params.values() if callspec else ():
        named |= _labs_named_by(value)
    for source in (inspect.getsource(item.function), Path(str(item.fspath)).read_text()):
        if named:
            break
        named = {
            lab
            for lab, var in ((LAB, "LAB"), (SINGLE, "SINGLE"), (DJANGO, "DJANGO"))
            if re.search(rf"\b{var}(_URL)?\b", source)
        }
    groups = {LAB_GROUPS[lab] for lab in named or {LAB}}
    return groups.pop() if len(groups) == 1 else "lab"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_group(name): the lab group a test runs in")
    config.addinivalue_line(
        "markers", "fresh_lab: runs first in its group, on the lab as `make integration` starts it"
    )
    for group in GROUPS:
        config.addinivalue_line("markers", f"group_{group}: runs with the {group} lab group")


@pytest.fixture(autouse=True)
def cpu_used(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each lab test's CPU, its own and its labs' (tests/integration/cpu_use.py)."""
    meter = cpu_use.Meter()
    yield
    cpu_use.record(cpu_use.group_of_this_run(), {"test": request.node.nodeid, **meter.stop()})


@pytest.hookimpl(tryfirst=True)  # before -m selects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(f"group_{lab_group(item)}")
    items.sort(key=lambda item: item.get_closest_marker("fresh_lab") is None)
