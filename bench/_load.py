"""What the benchmarks share: HTTP load through nginx, and the lab around it.

Two client populations send requests for the whole run and record every answer:

- ``new``: one fresh TCP connection per request (``Connection: close``), the way a
  browser's first request or a health checker reaches the service;
- ``keepalive``: one persistent connection per client, reused for many requests; a
  request on it that gets no HTTP answer counts as failed and the client reconnects.

Times are wall-clock seconds (``time.time()``) so that they compare with the release
journal, which Ansible stamps from the same host clock.

The rest runs the ``bluegreen`` CLI, reads the release journal from the primary load
balancer (``ansible.builtin.slurp``) and finds the URL nginx is published on. An https URL
(``--https``: the port 443 is published on) is checked against one CA file only, the lab's
by default (``--ca-file``), so a bench over TLS measures what a verifying client sees.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import ipaddress
import json
import math
import os
import random
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from rich.console import Console
from rich.table import Table

PROJECT = Path(__file__).resolve().parents[1]
COLOUR_HEADER = "X-Bluegreen-Colour"
JOURNAL = "/var/lib/bluegreen/sampleapp/journal.jsonl"
NEW = "new"
KEEPALIVE = "keepalive"
DEFAULT_PORTS = {"http": 80, "https": 443}
# Made by `bluegreen lab up` for the lab hosts that publish HTTPS.
LAB_CA = PROJECT / "state" / "lab" / "tls" / "ca.crt"
_trusted_ca = LAB_CA


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request and what came back; ``status`` is None when no HTTP answer came.

    ``fresh`` says whether the request opened a new TCP connection.
    """

    population: str
    method: str
    fresh: bool
    started: float
    ended: float
    status: int | None
    colour: str | None
    error: str | None

    @property
    def failed(self) -> bool:
        return self.status is None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class LoadSpec:
    """How much load, of which kind, for at most how long."""

    url: str
    new_clients: int = 4
    keepalive_clients: int = 2
    rate: float = 25.0  # requests per second, per client
    post_share: float = 0.1  # share of requests that are POST /notes
    get_path: str = "/"  # what the other requests GET
    timeout: float = 5.0  # seconds per request (connect and read)
    max_seconds: float = 1800.0  # every client stops by itself after this

    @property
    def max_requests_per_client(self) -> int:
        return math.ceil(self.rate * self.max_seconds) + 1


@dataclass
class PopulationStats:
    """Totals for one population over a set of samples."""

    requests: int = 0
    failed: int = 0
    non_2xx: int = 0
    posts: int = 0
    connections: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "non_2xx": self.non_2xx,
            "posts": self.posts,
            "connections": self.connections,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


def loopback_target(url: str) -> tuple[str, int]:
    """Host and port of ``url``, refusing anything but a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise BenchError(f"--url {url!r}: give it as http://127.0.0.1:PORT or https://...")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"--url {url!r}: benchmarks send traffic only to 127.0.0.1")
    return host, parts.port or DEFAULT_PORTS[parts.scheme]


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """--https and --ca-file, for the benches that send traffic through nginx."""
    parser.add_argument(
        "--https", action="store_true", help="through HTTPS: the port 443 is published on"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=LAB_CA,
        help="the only CA trusted for https URLs (default: the lab CA, state/lab/tls/ca.crt)",
    )


def target_url(args: argparse.Namespace) -> str:
    """The nginx URL of a bench: --url, else the inventory's published port (443 with
    --https); an https URL trusts --ca-file only."""
    global _trusted_ca
    _trusted_ca = args.ca_file
    url = args.url or inventory_url(args.inventory, https=args.https)
    if urlsplit(url).scheme == "https":
        tls_context(_trusted_ca)  # a missing CA file stops the bench before any client starts
    return url


@functools.cache
def tls_context(ca_file: Path) -> ssl.SSLContext:
    if not ca_file.is_file():
        raise BenchError(f"no CA file {ca_file}: `bluegreen lab up` makes the lab's; or --ca-file")
    return ssl.create_default_context(cafile=ca_file)


def connect(url: str, timeout: float) -> http.client.HTTPConnection:
    """A new (not yet opened) connection to ``url``'s loopback host, over TLS for https."""
    host, port = loopback_target(url)
    if urlsplit(url).scheme == "https":
        context = tls_context(_trusted_ca)
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def inventory_dir(inventory: str) -> Path:
    """``inventories/<name>`` for a name, else the path as given (like the CLI)."""
    named = PROJECT / "inventories" / inventory
    if "/" not in inventory and named.is_dir():
        return named
    path = Path(inventory).expanduser()
    if path.is_dir():
        return path
    raise BenchError(f"inventory {inventory!r} is neither a name under inventories/ nor a folder")


def side_inventory(
    lab: str, name: str, variables: Path, changes: Mapping[str, Any] | None = None
) -> str:
    """``inventories/scratch-<name>`` (not kept in git): the hosts of the lab ``lab`` with
    ``variables`` for all of them, for a second service on that lab's containers; its name.
    ``changes`` replace variables of the file, and add to those that are mappings."""
    source, inventory = inventory_dir(lab), PROJECT / "inventories" / f"scratch-{name}"
    shutil.rmtree(inventory, ignore_errors=True)
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(source / "hosts.yml", inventory / "hosts.yml")
    shutil.copy(source / "group_vars" / "lab_hosts.yml", inventory / "group_vars")
    if not changes:
        shutil.copy(variables, inventory / "group_vars" / "all.yml")
        return inventory.name
    values = yaml.safe_load(variables.read_text(encoding="utf-8")) or {}
    for key, value in changes.items():
        old = values.get(key)
        values[key] = (
            {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        )
    text = f"# {variables.name} with the changes of a test\n" + yaml.safe_dump(
        values, sort_keys=False
    )
    (inventory / "group_vars" / "all.yml").write_text(text, encoding="utf-8")
    return inventory.name


def inventory_url(inventory: str, https: bool = False, port: int | None = None) -> str:
    """The URL of nginx in a lab inventory: the host port that port 80 (443 for HTTPS, or
    ``port``) is published on."""
    urls = inventory_urls(inventory, https, port)
    if not urls:
        port = port or DEFAULT_PORTS["https" if https else "http"]
        raise BenchError(f"no host of {inventory} publishes port {port}; pass --url")
    return urls[0]


def inventory_urls(inventory: str, https: bool = False, port: int | None = None) -> list[str]:
    """The URL of nginx on every host of a lab inventory that publishes port 80 (443 for
    HTTPS, or ``port``), in order."""
    scheme = "https" if https else "http"
    port = port or DEFAULT_PORTS[scheme]
    hosts_file = inventory_dir(inventory) / "hosts.yml"
    try:
        tree = yaml.safe_load(hosts_file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise BenchError(f"cannot read {hosts_file}: {exc}; pass --url") from exc
    published = [
        (host_vars or {}).get("bluegreen_lab_published_ports") or {}
        for host_vars in _host_vars(tree.get("all", {}))
    ]
    return [
        f"{scheme}://127.0.0.1:{int(host_port)}"
        for ports in published
        for container_port, host_port in ports.items()
        if int(container_port) == port
    ]


def first_lb(inventory: str) -> str:
    """The inventory's first load balancer (group lb), as ansible-inventory lists it."""
    done = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory_dir(inventory)), "--list"],
        cwd=PROJECT,
        env=dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        return json.loads(done.stdout)["lb"]["hosts"][0]
    except (json.JSONDecodeError, KeyError, IndexError) as exc:
        raise BenchError(f"no load balancer in {inventory}: {done.stderr[-400:]}") from exc


def _host_vars(group: dict) -> Iterable[dict]:
    yield from (group.get("hosts") or {}).values()
    for child in (group.get("children") or {}).values():
        yield from _host_vars(child or {})


class Load:
    """Both client populations in threads, from ``start()`` until ``stop()``.

    Every client stops by itself after ``spec.max_seconds`` or
    ``spec.max_requests_per_client`` requests, whichever comes first.
    """

    def __init__(self, spec: LoadSpec, seed: int = 1) -> None:
        self.spec = spec
        loopback_target(spec.url)  # refuses a URL that is not loopback before any client starts
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seed = seed

    def start(self) -> None:
        deadline = time.monotonic() + self.spec.max_seconds
        clients = [(NEW, i) for i in range(self.spec.new_clients)]
        clients += [(KEEPALIVE, i) for i in range(self.spec.keepalive_clients)]
        for population, index in clients:
            thread = threading.Thread(
                target=self._client,
                args=(population, random.Random(self._seed * 1000 + len(self._threads)), deadline),
                name=f"{population}-{index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.spec.timeout + 5)

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _client(self, population: str, rng: random.Random, deadline: float) -> None:
        interval = 1.0 / self.spec.rate
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        for sequence in range(self.spec.max_requests_per_client):
            if self._stop.is_set() or time.monotonic() >= deadline:
                break
            if population == NEW or conn is None:
                conn = connect(self.spec.url, self.spec.timeout)
            sample = self._request(conn, population, rng, sequence)
            self.samples.append(sample)
            if population == NEW or sample.failed:
                conn.close()
                conn = None
            next_at = max(next_at + interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()

    def _request(
        self,
        conn: http.client.HTTPConnection,
        population: str,
        rng: random.Random,
        sequence: int,
    ) -> Sample:
        headers = {"Connection": "close" if population == NEW else "keep-alive"}
        if rng.random() < self.spec.post_share:
            method, path = "POST", "/notes"
            name = threading.current_thread().name
            body: bytes | None = json.dumps({"body": f"bench {name} #{sequence}"}).encode()
            headers["Content-Type"] = "application/json"
        else:
            method, path, body = "GET", self.spec.get_path, None
        fresh = conn.sock is None
        started = time.time()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            return Sample(population, method, fresh, started, time.time(), None, None, error)
        return Sample(
            population,
            method,
            fresh,
            started,
            time.time(),
            response.status,
            response.getheader(COLOUR_HEADER),
            None,
        )


def population_stats(samples: Iterable[Sample], population: str) -> PopulationStats:
    mine = [s for s in samples if s.population == population]
    latencies = sorted((s.ended - s.started) * 1000 for s in mine if not s.failed)
    return PopulationStats(
        requests=len(mine),
        failed=sum(s.failed for s in mine),
        non_2xx=sum(not s.failed and not s.ok for s in mine),
        posts=sum(s.method == "POST" for s in mine),
        connections=sum(s.fresh for s in mine),
        errors=dict(Counter(s.error for s in mine if s.error)),
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
    )


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 1)


def flip_time(samples: Iterable[Sample], start: float, end: float, colour: str) -> float | None:
    """When traffic moved to ``colour`` for good within [start, end).

    The start time of the earliest request such that it and every request started after
    it in the window were answered 2xx by ``colour``; None when the last one was not.
    A failed or non-2xx answer counts against the switch like an old-colour answer.
    """
    window = sorted((s for s in samples if start <= s.started < end), key=lambda s: s.started)
    flipped = None
    for sample in reversed(window):
        if not (sample.ok and sample.colour == colour):
            break
        flipped = sample.started
    return flipped


def first_answer(samples: Iterable[Sample], start: float, end: float, colour: str) -> float | None:
    """The start time of the first request in [start, end) answered 2xx by ``colour``."""
    starts = [
        s.started for s in samples if start <= s.started < end and s.ok and s.colour == colour
    ]
    return min(starts, default=None)


def median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def maximum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(max(known), 3) if known else None


def parse_time(text: str) -> float:
    """Epoch seconds of a journal timestamp such as 2026-11-22T02:23:49.800Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class CommandRun:
    """One ``bluegreen`` run: its timing and what its ``--json`` object said."""

    argv: list[str]
    started: float
    ended: float
    exit_code: int
    report: dict[str, Any]

    @property
    def wall_s(self) -> float:
        return round(self.ended - self.started, 3)

    @property
    def stats(self) -> dict[str, Any]:
        return self.report.get("custom_stats") or {}

    @property
    def release_id(self) -> str | None:
        return self.stats.get("bluegreen_release_id")

    def describe(self) -> str:
        message = self.report.get("message") or "no JSON report"
        return f"`{' '.join(self.argv)}` exited {self.exit_code}: {message}"


def tool(name: str) -> str:
    """A console script from the interpreter's own environment (the project venv)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def run_cli(
    args: Sequence[str],
    timeout: float,
    started: float | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandRun:
    """Run ``bluegreen ARGS --json`` in the project; stop its process group on timeout.

    ``started`` lets a caller that starts measuring just before this call say so; ``env``
    adds to the environment the command runs with.
    """
    argv = [tool("bluegreen"), *args, "--json"]
    began = time.time() if started is None else started
    process = subprocess.Popen(
        argv,
        cwd=PROJECT,
        env=None if env is None else os.environ | dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        message = f"timed out after {timeout:.0f} s and was stopped; the release lock may be held"
        return CommandRun(argv, began, time.time(), -1, {"message": message})
    return CommandRun(argv, began, time.time(), process.returncode, _last_json(stdout))


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    return {"message": f"no JSON object on stdout: {stdout[-300:]!r}"}


def read_journal(inventory: str, path: str = JOURNAL, timeout: float = 120) -> list[dict]:
    """The release journal from the primary load balancer (``lb[0]``), via slurp."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    argv = [tool("ansible"), "lb[0]", "-i", str(inventory_dir(inventory))]
    argv += ["-m", "ansible.builtin.slurp", "-a", f"src={path}"]
    done = subprocess.run(
        argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        hosts = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]
        (result,) = hosts.values()
        content = base64.b64decode(result["content"]).decode("utf-8")
    except (ValueError, KeyError, IndexError) as exc:
        raise BenchError(
            f"could not read {path} on lb[0] of {inventory}: {done.stdout[-300:]}"
            f"{done.stderr[-300:]}"
        ) from exc
    records = []
    for line in content.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a last line cut short by a crash; the reader elsewhere warns
    return records


def restart_colour(inventory: str, colour: str, service: str = "sampleapp") -> None:
    """Restart one colour's unit wherever it runs, so a fault that counts requests from
    the start of its process starts counting afresh (a release of the build that the
    idle colour runs already does not restart it)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    argv = [
        tool("ansible"),
        "app",
        "-i",
        str(inventory_dir(inventory)),
        "-m",
        "ansible.builtin.shell",
    ]
    # Only where the colour is installed: the unit is a template, present on every host.
    argv += [
        "-a",
        f"test -e /opt/{service}/colours/{colour} || exit 0; systemctl restart {service}@{colour}",
    ]
    done = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise BenchError(f"could not restart {service}@{colour}: {done.stdout[-300:]}")


def switch_record(journal: Iterable[dict], release_id: str | None) -> dict | None:
    """The ``switch`` step that went well for one release or rollback."""
    for record in journal:
        if (
            release_id
            and record.get("release_id") == release_id
            and record.get("step") == "switch"
            and record.get("outcome") == "ok"
        ):
            return record
    return None


def live_colour(url: str, timeout: float = 5.0) -> str | None:
    """The colour nginx answers with right now, on a fresh connection."""
    return answering_colour(url, timeout)


def live_version(url: str, timeout: float = 5.0) -> str | None:
    """The version nginx answers with right now, on a fresh connection."""
    conn = connect(url, timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.getheader("X-Bluegreen-Version")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def answering_colour(url: str, timeout: float) -> str | None:
    """The colour of a 2xx answer to GET / on a new connection; None for anything else."""
    conn = connect(url, timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.getheader(COLOUR_HEADER) if 200 <= response.status < 300 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def log(message: str) -> None:
    """Progress goes to stderr so that stdout ends with the JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Write:
    """One ``POST /notes`` and its answer; ``status`` is None when no HTTP answer came.

    Only a 2xx is an acknowledgement: the service said the row is stored. A 503 during
    maintenance (with Retry-After) tells the client to come back; it stored nothing.
    """

    body: str
    started: float
    ended: float
    status: int | None
    note_id: int | None
    retry_after: str | None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class WriteTally:
    """What happened to the writes of one scenario."""

    attempted: int = 0
    acknowledged: int = 0
    present: int = 0
    lost: int = 0
    maintenance_503: int = 0
    other_failures: int = 0
    lost_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "present": self.present,
            "lost": self.lost,
            "maintenance_503": self.maintenance_503,
            "other_failures": self.other_failures,
            "lost_samples": self.lost_samples,
        }


class Writer:
    """Clients that insert notes through nginx without pause, each body unique.

    Every answer is recorded. A refused write (503, no answer) is simply the next
    attempt's predecessor: the client goes on, as a client that retries would.
    """

    def __init__(
        self, url: str, tag: str, clients: int = 2, rate: float = 5.0, timeout: float = 10.0
    ) -> None:
        loopback_target(url)
        self.url = url
        self.tag = tag
        self.clients = clients
        self.rate = rate
        self.timeout = timeout
        self.writes: list[Write] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def __enter__(self) -> Writer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _client(self, index: int) -> None:
        interval = 1.0 / self.rate
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            self.writes.append(self._post(f"{self.tag}-{index}-{sequence}-{os.urandom(4).hex()}"))
            self._stop.wait(interval)

    def _post(self, body: str) -> Write:
        conn = connect(self.url, self.timeout)
        started = time.time()
        try:
            payload = json.dumps({"body": body}).encode()
            headers = {"Content-Type": "application/json", "Connection": "close"}
            conn.request("POST", "/notes", body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            return Write(body, started, time.time(), None, None, None)
        finally:
            conn.close()
        note_id = None
        if 200 <= response.status < 300:
            try:
                note_id = int(json.loads(data)["id"])
            except (ValueError, KeyError, TypeError):
                note_id = None
        return Write(
            body, started, time.time(), response.status, note_id, response.getheader("Retry-After")
        )


class NoteReader:
    """Reads notes back through nginx on one keep-alive connection (thousands of them)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        loopback_target(url)
        self.url = url
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def body(self, note_id: int) -> str | None:
        """The body stored under ``note_id`` now; None when there is no such note."""
        for _ in range(5):
            if self._conn is None:
                self._conn = connect(self.url, self.timeout)
            try:
                self._conn.request("GET", f"/notes/{note_id}")
                response = self._conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                time.sleep(1)
                continue
            if response.status == 404:
                return None
            if response.status == 200:
                return json.loads(data).get("body")
            time.sleep(1)
        raise BenchError(f"GET /notes/{note_id} kept failing; is the service up at {self.url}?")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def tally_writes(writes: Sequence[Write], stored: dict[int, str | None]) -> WriteTally:
    """Count acknowledged writes and those whose row (same id, same body) is still stored.

    ``stored`` maps each acknowledged note id to the body stored under it now. A restore
    can hand a lost row's id to a later insert, so the body must match, not just the id.
    """
    tally = WriteTally(attempted=len(writes))
    for write in writes:
        if write.acknowledged:
            tally.acknowledged += 1
            if write.note_id is not None and stored.get(write.note_id) == write.body:
                tally.present += 1
            elif len(tally.lost_samples) < 5:
                tally.lost_samples.append(f"id {write.note_id}: {write.body}")
        elif write.status == 503 and write.retry_after is not None:
            tally.maintenance_503 += 1
        else:
            tally.other_failures += 1
    tally.lost = tally.acknowledged - tally.present
    return tally


def check_writes(url: str, writes: Sequence[Write]) -> WriteTally:
    """Read back every acknowledged note through nginx and tally the writes."""
    ids = sorted({w.note_id for w in writes if w.acknowledged and w.note_id is not None})
    reader = NoteReader(url)
    try:
        return tally_writes(writes, {note_id: reader.body(note_id) for note_id in ids})
    finally:
        reader.close()


def run_module_on_each(
    inventory: str,
    pattern: str,
    module: str,
    args: dict[str, Any],
    become_user: str | None = None,
    timeout: float = 1800,
) -> dict[str, dict[str, Any]]:
    """Run one module (the project's own too) on every lab host ``pattern`` matches: each
    host's result, failed or not."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    argv = [tool("ansible"), pattern, "-i", str(inventory_dir(inventory))]
    argv += ["-m", module, "-a", json.dumps(args)]
    if become_user:
        argv += ["--become", "--become-user", become_user]
    done = subprocess.run(
        argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        hosts = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError) as exc:
        raise BenchError(
            f"{module} on {pattern} of {inventory} gave no result: {done.stdout[-300:]}"
            f"{done.stderr[-300:]}"
        ) from exc
    if not hosts:
        raise BenchError(f"{module}: no host of {inventory} matches {pattern}")
    return dict(hosts)


def run_module(inventory: str, host: str, *module_and_args: Any, **options: Any) -> dict[str, Any]:
    """Run one module (the project's own too) on one lab host; its result, failed or not.
    Arguments and options as run_module_on_each's."""
    results = run_module_on_each(inventory, host, *module_and_args, **options)
    module = module_and_args[0]
    if len(results) != 1:
        raise BenchError(f"{module}: {host} of {inventory} names {len(results)} hosts, not one")
    return next(iter(results.values()))


# Where a command's time goes, from ansible-runner's job events.

_COLOUR = re.compile(r"\b(blue|green)\b")


@dataclass
class RunProfile:
    """Seconds per phase or play, and per (play, task) summed over its occurrences."""

    plays: dict[str, float] = field(default_factory=dict)
    tasks: dict[tuple[str, str], float] = field(default_factory=dict)


def run_profile(run_dir: Path, run: CommandRun) -> RunProfile:
    """Start-up, each play, each task and tear-down of one run, from its job events.

    A task's time runs from its start event to the next task's or play's, as the
    ``profile_tasks`` callback counts it (include and argument checks are tasks too).
    Colour names are folded so that both directions add up to the same task.
    """
    marks = ("playbook_on_start", "playbook_on_play_start", "playbook_on_task_start")
    marks += ("playbook_on_stats",)
    events = []
    for path in (run_dir / "job_events").glob("*.json"):
        event = json.loads(path.read_text(encoding="utf-8"))
        if event.get("event") in marks:
            events.append(event)
    events.sort(key=lambda e: e["counter"])
    profile = RunProfile()
    if not events:
        return profile
    times = [datetime.fromisoformat(e["created"]).timestamp() for e in events]
    profile.plays["start-up (CLI, ansible-playbook)"] = times[0] - run.started
    for event, at, following in zip(events, times, [*times[1:], times[-1]], strict=True):
        data = event.get("event_data", {})
        play = _folded(data.get("play", ""))
        if event["event"] == "playbook_on_play_start":
            name = f"play: {play}"
            profile.plays[name] = profile.plays.get(name, 0.0)
        if event["event"] in ("playbook_on_play_start", "playbook_on_task_start"):
            profile.plays[f"play: {play}"] += following - at
        if event["event"] == "playbook_on_task_start":
            key = (play, _folded(data.get("task", "")))
            profile.tasks[key] = profile.tasks.get(key, 0.0) + following - at
    profile.plays["tear-down (stats, exit)"] = run.ended - times[-1]
    return profile


def _folded(name: str) -> str:
    return _COLOUR.sub("<colour>", name)


def print_profile(runs: Iterable[CommandRun], top: int) -> None:
    """The costliest plays and tasks, median over the runs, from ansible-runner's events."""
    plays: dict[str, list[float]] = {}
    tasks: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        run_dir = run.report.get("run_dir")
        if not run_dir:
            continue
        profile = run_profile(Path(run_dir), run)
        for name, seconds in profile.plays.items():
            plays.setdefault(name, []).append(seconds)
        for key, seconds in profile.tasks.items():
            tasks.setdefault(key, []).append(seconds)
    if not plays:
        return
    console = Console(width=150, highlight=False)
    table = Table(title="Where the time goes (median over the runs, s)", title_justify="left")
    table.add_column("phase / play")
    table.add_column("s", justify="right")
    for name, values in plays.items():
        table.add_row(name, f"{statistics.median(values):.2f}")
    console.print(table)
    costly = sorted(tasks.items(), key=lambda item: statistics.median(item[1]), reverse=True)
    table = Table(
        title=f"The {top} costliest tasks (median, s; a task run several times is summed)",
        title_justify="left",
    )
    for column in ("play", "task", "runs", "s"):
        table.add_column(column, justify="left" if column in ("play", "task") else "right")
    for (play, task), values in costly[:top]:
        table.add_row(play, task, str(len(values)), f"{statistics.median(values):.2f}")
    console.print(table)


# What a team sets for its service, for the benches that judge the colour's own signals:
# caps on CPU per request and on its processes' memory, and a declared dependency, the
# catalog API (tests/integration/test_colour_signals.py sets the same).
CATALOG_UNIT = "bluegreen-bench-catalog"
HOSTS_MARK = "# bluegreen-bench-catalog"
# What a team sets for its service (tests/integration/test_colour_signals.py sets the same).
CAPS = {
    "bluegreen_analysis_thresholds": {
        "cpu_per_request": {"critical": 15},
        "process_memory": {"critical": 150},
    },
    "bluegreen_service_dependencies": [
        {"name": "catalog", "http": "http://catalog.lab:9000/", "timeout": 2}
    ],
}


def shell(inventory: str, host: str, command: str) -> str:
    result = run_module(inventory, host, "ansible.builtin.shell", {"cmd": command})
    if result.get("rc", 1) != 0:
        raise BenchError(f"{command!r} failed on {host}: {result.get('stderr') or result}")
    return str(result.get("stdout", ""))


def point_catalog(inventory: str, host: str, address: str | None) -> None:
    """Where catalog.lab resolves on `host` (None: nowhere); /etc/hosts rewritten in place."""
    command = f"grep -v '{HOSTS_MARK}' /etc/hosts > /tmp/hosts; cat /tmp/hosts > /etc/hosts"
    if address:
        command += f"; echo '{address} catalog.lab {HOSTS_MARK}' >> /etc/hosts"
    shell(inventory, host, command)


@contextmanager
def team_settings(inventory: str, caps: bool) -> Iterator[None]:
    """The caps and the declared dependency, as a team's inventory sets them; the catalog
    API served from db1 and resolved by every app host."""
    path = inventory_dir(inventory) / "group_vars" / "all" / "zz-bench.yml"
    if not caps:
        yield
        return
    path.write_text(yaml.safe_dump(CAPS))
    db1 = shell(inventory, "app[0]", "getent hosts db1 | cut -d' ' -f1").strip()
    shell(
        inventory, "db1", f"systemd-run --unit={CATALOG_UNIT} python3 -m http.server 9000 -d /tmp"
    )
    try:
        for host in ("app-blue", "app-green"):
            point_catalog(inventory, host, db1)
        yield
    finally:
        path.unlink(missing_ok=True)
        shell(inventory, "db1", f"systemctl stop {CATALOG_UNIT} || true")
        for host in ("app-blue", "app-green"):
            point_catalog(inventory, host, None)


# Page loads of a single-page frontend: what a browser does, checked for mixed versions.

_PAGE_VERSION = re.compile(r'<meta name="sampleapp-version" content="([^"]+)"')
_PAGE_ASSETS = re.compile(r'(?:src|href)="(/[^"]+/assets/[^"]+)"')
_ASSET_VERSION = re.compile(r'SAMPLEAPP_FRONTEND_VERSION = "([^"]+)"|/\* sampleapp (\S+) \*/')


@dataclass
class PageLoad:
    """One page load: the page's version and colour, and each asset's."""

    started: float
    page_version: str | None = None
    page_colour: str | None = None
    assets: list[tuple[str, int, str | None, str | None]] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or any(status != 200 for _, status, _, _ in self.assets)

    @property
    def mixed(self) -> bool:
        """An asset of another version than its page: what a switch must never cause."""
        return any(
            version != self.page_version for _, status, version, _ in self.assets if status == 200
        )

    @property
    def cross_colour(self) -> int:
        """Assets the other colour served (the page's colour no longer had them)."""
        return sum(1 for _, _, _, colour in self.assets if colour and colour != self.page_colour)


class PageLoads:
    """``clients`` browsers loading ``path`` and its assets over keep-alive connections,
    ``think_s`` apart, until stopped."""

    def __init__(self, url: str, path: str, clients: int, think_s: float = 0.05) -> None:
        self.url, self.path, self.clients, self.think_s = url, path, clients, think_s
        self.loads: list[PageLoad] = []
        self.retries = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> PageLoads:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _get(
        self, connection: http.client.HTTPConnection, path: str
    ) -> tuple[int, str, str | None]:
        """GET ``path``; as a browser does, once more on a new connection when a kept-alive
        one was closed under the request (an nginx reload closes idle ones)."""
        for attempt in (1, 2):
            try:
                connection.request("GET", path, headers={"Cache-Control": "no-cache"})
                answer = connection.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if attempt == 2:
                    raise
                self.retries += 1
        body = answer.read().decode(errors="replace")
        return answer.status, body, answer.getheader("X-Bluegreen-Colour")

    def _client(self) -> None:
        connection = connect(self.url, timeout=10)
        while not self._stop.is_set():
            load = PageLoad(started=time.time())
            try:
                status, page, colour = self._get(connection, self.path)
                load.page_colour = colour
                found = _PAGE_VERSION.search(page)
                load.page_version = found.group(1) if found else None
                if status != 200 or not found:
                    load.error = f"page: {status}"
                for asset in _PAGE_ASSETS.findall(page):
                    time.sleep(self.think_s)
                    status, body, served_by = self._get(connection, asset)
                    match = _ASSET_VERSION.search(body)
                    version = (match.group(1) or match.group(2)) if match else None
                    load.assets.append((asset, status, version, served_by))
            except (OSError, http.client.HTTPException) as exc:
                load.error = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = connect(self.url, timeout=10)
            self.loads.append(load)
            time.sleep(self.think_s)
        connection.close()

    def summary(self) -> dict[str, Any]:
        return {
            "pages": len(self.loads),
            "failed": sum(1 for load in self.loads if load.failed),
            "mixed": sum(1 for load in self.loads if load.mixed),
            "cross_colour_assets": sum(load.cross_colour for load in self.loads),
            "versions": sorted({load.page_version for load in self.loads if load.page_version}),
            "retried_on_closed_keepalive": self.retries,
            "errors": sorted({load.error for load in self.loads if load.error})[:5],
        }
