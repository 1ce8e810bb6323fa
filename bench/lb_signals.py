"""Golden signals at the load balancer: as exact as the service's own, and what they cost.

    .venv/bin/python bench/lb_signals.py -i lab-single
    .venv/bin/python bench/lb_signals.py --skip-accuracy     # the cost only, no lab

Accuracy (lab-single: both colours on the load balancer's host): with load through
nginx (bench/_load's clients, every request ``GET /work?ms=100``: the sample service
answers after 100 ms, and its histogram has a bucket per millisecond up to 150 ms, so
neither side's resolution decides the comparison), the same window is measured two
ways by the modules a release uses, run ad hoc on the primary load balancer:
``golden_signals source=scrape`` from the live colour's own /metrics histogram (sample,
load, analyse from that baseline) and ``nginx_requests`` (mark, load, read) judged by
``golden_signals source=lb``.
Printed: the load balancer's p95 and p99 of the request time (what users got) and of the
upstream time (what the colour's server took), the service's own p95 and p99, the
requests each counted, and what the clients saw. ``within_5pct`` compares the upstream
p95 with the service's: both time the service, without the client's connection, which
the request time includes.

Cost: two throwaway nginx on 127.0.0.1 answering ``return 200`` (no backend), one with
bluegreen's per-request log and one without, get the same requests in alternating
batches; the CPU time each nginx worker used (``/proc/<pid>/stat``) per request is the
cost, and 1 s divided by it is what one core could serve. CPU time, not wall-clock
throughput: the Python clients could not saturate nginx, and the machine is shared.

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _load import (
    PROJECT,
    BenchError,
    Load,
    LoadSpec,
    add_tls_options,
    first_lb,
    inventory_dir,
    live_colour,
    log,
    population_stats,
    target_url,
    tool,
)

NGINX = "/usr/sbin/nginx"
LOG = "/var/log/nginx/bluegreen-sampleapp.requests.log"
EXCLUDED = ["/health", "/metrics"]
SERVERS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}
# The log_format bluegreen_lb renders (roles/bluegreen_lb/templates/site.conf.j2).
LOG_FORMAT = (
    "log_format bluegreen escape=json "
    """'{"time":$msec,"colour":"blue","status":$status,"request_time":$request_time,'"""
    """ '"upstream_time":"$upstream_response_time","upstream":"$upstream_addr",'"""
    """ '"method":"$request_method","uri":"$uri","bytes":$body_bytes_sent}';"""
)


def adhoc(inventory: str, host: str, module: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one module on one lab host with `ansible` and return its result."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    argv = [tool("ansible"), host, "-i", str(inventory_dir(inventory)), "-m", module]
    argv += ["-a", json.dumps(args)]
    done = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    try:
        plays = json.loads(done.stdout)["plays"]
        result = plays[0]["tasks"][0]["hosts"][host]
    except (json.JSONDecodeError, KeyError, IndexError) as exc:
        raise BenchError(f"{module} on {host}: {done.stdout[-400:]} {done.stderr[-400:]}") from exc
    if result.get("failed") or result.get("unreachable"):
        raise BenchError(f"{module} on {host} failed: {result.get('msg')}")
    return result


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def diff_pct(value: float | None, reference: float | None) -> float | None:
    """How far ``value`` is from ``reference``, in % of it; None without both."""
    if value is None or not reference:
        return None
    return round((value - reference) / reference * 100, 1)


def accuracy(args: argparse.Namespace, url: str) -> dict[str, Any]:
    lb = first_lb(args.inventory)
    colour = live_colour(url)
    if colour not in SERVERS:
        raise BenchError(f"nothing answers with a colour at {url}: release a version first")
    targets = [f"http://{SERVERS[colour]}/metrics"]
    spec = LoadSpec(
        url=url,
        new_clients=args.clients,
        keepalive_clients=args.clients,
        rate=args.rate,
        post_share=0.0,
        get_path=f"/work?ms={args.work_ms}",
    )
    with Load(spec) as load:
        time.sleep(2)  # both populations running before the window opens
        mark = adhoc(args.inventory, lb, "nginx_requests", {"path": LOG, "state": "mark"})
        sample = adhoc(
            args.inventory, lb, "golden_signals", {"source": "scrape", "mode": "sample",
                                                   "targets": targets}
        )  # fmt: skip
        opened = time.time()
        log(f"window open on {colour}; load for {args.seconds:g} s")
        time.sleep(args.seconds)
        read = adhoc(
            args.inventory, lb, "nginx_requests",
            {"path": LOG, "state": "read", "since": mark["mark"], "exclude_routes": EXCLUDED},
        )  # fmt: skip
        scraped = adhoc(
            args.inventory, lb, "golden_signals",
            {"source": "scrape", "targets": targets, "baseline": sample["sample"],
             "min_requests": 1},
        )  # fmt: skip
        closed = time.time()
    window = {key: read[key] for key in ("window", "colours", "unrouted", "excluded", "unparsed",
                                         "rotated", "lost", "lines")}  # fmt: skip
    judged = adhoc(
        args.inventory, lb, "golden_signals",
        {"source": "lb", "colour": colour, "lb_windows": [{**window, "host": lb}],
         "min_requests": 1},
    )  # fmt: skip
    clients = [s for s in load.samples if opened <= s.started <= closed]
    new = population_stats(clients, "new").as_dict()

    def figure(result: dict[str, Any], signal_name: str) -> float | None:
        return ms(result["signals"][signal_name]["value"])

    upstream = judged["signals"]["latency_p95"]["upstream"]
    lb_p95, service_p95 = figure(judged, "latency_p95"), figure(scraped, "latency_p95")
    upstream_p95 = ms(upstream["p95"])
    upstream_diff = diff_pct(upstream_p95, service_p95)
    log(
        f"p95: load balancer {lb_p95} ms request time, {upstream_p95} ms upstream; "
        f"service {service_p95} ms; upstream against service {upstream_diff} %"
    )
    return {
        "colour": colour,
        "window_s": round(read["window"]["seconds"], 2),
        "lb_requests": judged["requests"],
        "service_requests": scraped["requests"],
        "lb_p95_ms": lb_p95,
        "lb_upstream_p95_ms": upstream_p95,
        "service_p95_ms": service_p95,
        "p95_diff_pct": diff_pct(lb_p95, service_p95),
        "upstream_p95_diff_pct": upstream_diff,
        "within_5pct": None if upstream_diff is None else abs(upstream_diff) <= 5,
        "lb_p99_ms": figure(judged, "latency_p99"),
        "lb_upstream_p99_ms": ms(upstream["p99"]),
        "service_p99_ms": figure(scraped, "latency_p99"),
        "lb_upstream_times": upstream["observations"],
        "lb_no_upstream_time": upstream["no_upstream_time"],
        "lb_error_rate": judged["signals"]["error_rate"]["value"],
        "service_error_rate": scraped["signals"]["error_rate"]["value"],
        "client_p50_ms": new.get("p50_ms"),
        "client_p99_ms": new.get("p99_ms"),
    }


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp; uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
    keepalive_requests 1000000;
    {log_format}
    server {{
        listen 127.0.0.1:{port};
        access_log {access_log};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayNginx:
    def __init__(self, root: Path, logged: bool) -> None:
        self.prefix = root / ("logged" if logged else "unlogged")
        (self.prefix / "tmp").mkdir(parents=True)
        self.port = free_port()
        access_log = (
            f"{self.prefix}/requests.log bluegreen buffer=64k flush=1s" if logged else "off"
        )
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                prefix=self.prefix,
                port=self.port,
                user="user root;" if os.geteuid() == 0 else "",
                log_format=LOG_FORMAT,
                access_log=access_log,
            )
        )
        self.process = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", f"{self.prefix}/", "-e", f"{self.prefix}/error.log"],
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise BenchError(f"nginx did not listen: {(self.prefix / 'error.log').read_text()}")

    def worker_cpu_s(self) -> float:
        """utime + stime of the worker (the master's only child)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        worker = int(children.read_text().split()[0])
        fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def send(self, requests: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for _ in range(requests):
            connection.request("GET", "/notes?limit=5", headers={"User-Agent": "bench"})
            connection.getresponse().read()
        connection.close()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


def cost(args: argparse.Namespace) -> dict[str, Any]:
    if not Path(NGINX).exists():
        raise BenchError(f"{NGINX} is not installed (make test installs nginx-light)")
    root = Path(tempfile.mkdtemp(prefix="bluegreen-lbcost-"))
    servers = {"logged": ThrowawayNginx(root, True), "unlogged": ThrowawayNginx(root, False)}
    try:
        for server in servers.values():
            server.send(500)  # warm up
        used = dict.fromkeys(servers, 0.0)
        for _ in range(args.batches):
            for name, server in servers.items():
                before = server.worker_cpu_s()
                server.send(args.batch)
                used[name] += server.worker_cpu_s() - before
        lines = len((root / "logged" / "requests.log").read_text(encoding="utf-8").splitlines())
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    requests = args.batches * args.batch
    per_request = {name: used[name] / requests * 1e6 for name in used}
    per_core = {name: round(1e6 / us) if us else None for name, us in per_request.items()}
    return {
        "requests_each": requests,
        "logged_lines": lines,
        "cpu_us_per_request_logged": round(per_request["logged"], 2),
        "cpu_us_per_request_unlogged": round(per_request["unlogged"], 2),
        "log_cost_us_per_request": round(per_request["logged"] - per_request["unlogged"], 2),
        "requests_per_core_s_logged": per_core["logged"],
        "requests_per_core_s_unlogged": per_core["unlogged"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab-single")
    parser.add_argument("--url", help="nginx URL; default: port 80 as published in hosts.yml")
    add_tls_options(parser)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the window")
    parser.add_argument("--clients", type=int, default=4, help="clients of each kind")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s of each client")
    parser.add_argument(
        "--work-ms", type=int, default=100, help="how long each answer takes (GET /work?ms=N)"
    )
    parser.add_argument("--batches", type=int, default=10, help="cost: alternating batches")
    parser.add_argument("--batch", type=int, default=2000, help="cost: requests per batch")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {"benchmark": "lb_signals", "inventory": args.inventory}
    try:
        if not args.skip_accuracy:
            result["accuracy"] = accuracy(args, target_url(args))
            log(f"accuracy: {result['accuracy']}")
        if not args.skip_cost:
            result["cost"] = cost(args)
            log(f"cost: {result['cost']}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
