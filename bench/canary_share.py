"""Canary steps under load: the share each step actually served, and sticky clients.

Many virtual clients, each with its own canary cookie, ask for 20 ms of work through
every load balancer of the lab (new connection per request) while a release of a healthy
version takes canary steps (default 5, 25 and 50 %). The lab's load balancers tell
clients apart by that cookie (`bluegreen_lb_canary_key: cookie`, as lab-fleet sets it).
Measured, per step:

- share_lb: the new colour's share of the step's requests as the load balancers logged
  them (the canary's own verdict, from the journal), against the step's percentage;
- share_clients: the same share as the clients saw it (the version header of each answer
  in the step's window);
- clients_on_both: clients that got both versions inside the step's window (0: sticky);

and over the release: flips_back (clients that got the new version, then the old one
again: 0), failed (requests without a 2xx answer). Prints a table and, as its last line,
one JSON object. Traffic goes only to 127.0.0.1.

    .venv/bin/python bench/canary_share.py -i lab-fleet
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

from _load import BenchError, inventory_urls, log, read_journal, run_cli
from rich.console import Console
from rich.table import Table

Answer = tuple[float, int, int, str | None]  # time, client, status, version


class Clients:
    """`clients` virtual clients in `threads` threads, `rate` requests/s in all."""

    def __init__(self, urls: list[str], clients: int, threads: int, rate: float, path: str):
        self.urls, self.clients, self.path = urls, clients, path
        self.interval = threads / rate
        self.stop = threading.Event()
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(n, threads), daemon=True)
            for n in range(threads)
        ]

    def run(self, first: int, step: int) -> None:
        client = first
        while not self.stop.is_set():
            url = self.urls[client % len(self.urls)] + self.path
            headers = {"Connection": "close", "Cookie": f"bluegreen_sampleapp=bench-{client}"}
            at = time.time()
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers=headers), timeout=10
                ) as response:
                    answer = (response.status, response.headers.get("X-Bluegreen-Version"))
            except urllib.error.HTTPError as exc:
                answer = (exc.code, None)
            except OSError:
                answer = (0, None)
            with self.lock:
                self.answers.append((at, client, *answer))
            client = (client + step) % self.clients
            time.sleep(self.interval)

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


def flips_back(answers: list[Answer], old: str, new: str) -> int:
    """Clients that got the new version and later the old one again."""
    flipped, on_new = set(), set()
    for _at, client, _status, version in sorted(answers):
        if version == new:
            on_new.add(client)
        elif version == old and client in on_new:
            flipped.add(client)
    return len(flipped)


def step_figures(answers: list[Answer], verdict: dict, old: str, new: str) -> dict:
    since, until = verdict.get("since"), verdict.get("until")
    inside = [a for a in answers if since is not None and since <= a[0] <= (until or since)]
    seen: dict[int, set] = {}
    for _at, client, _status, version in inside:
        if version in (old, new):
            seen.setdefault(client, set()).add(version)
    served = [a for a in inside if a[3] in (old, new)]
    share_clients = 100.0 * sum(a[3] == new for a in served) / len(served) if served else None
    percent, share_lb = verdict["percent"], verdict.get("share_measured")
    return {
        "percent": percent,
        "share_lb": share_lb,
        "share_clients": round(share_clients, 2) if share_clients is not None else None,
        "off_by_points": round(abs(share_lb - percent), 2) if share_lb is not None else None,
        "requests": sum(verdict.get("requests", {}).values()),
        "clients_seen": len(seen),
        "clients_on_both": sum(len(versions) > 1 for versions in seen.values()),
        "verdict": verdict.get("action"),
        "p_latency": (verdict.get("tests") or [{}])[0].get("p_value"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab-fleet")
    parser.add_argument("--steps", default="5,25,50")
    parser.add_argument("--versions", nargs=2, default=["1.0.0", "2.0.0"])
    parser.add_argument("--clients", type=int, default=4000, help="virtual clients (4000)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=80.0, help="requests/s in all (80)")
    parser.add_argument("--path", default="/work?ms=20")
    parser.add_argument("--tolerance", type=float, default=3.0, help="points (3)")
    args = parser.parse_args()
    urls = inventory_urls(args.inventory)
    if not urls:
        raise BenchError(f"no host of {args.inventory} publishes nginx's port 80")
    live = None
    with urllib.request.urlopen(urls[0] + "/health", timeout=10) as response:
        live = response.headers.get("X-Bluegreen-Version")
    if live not in args.versions:
        log(f"releasing {args.versions[0]} first (live: {live})")
        first = run_cli(["release", "--version", args.versions[0], "-i", args.inventory], 900)
        if first.exit_code != 0:
            raise BenchError(f"release of {args.versions[0]} failed: {first.describe()}")
        live = args.versions[0]
    target = args.versions[1] if live == args.versions[0] else args.versions[0]
    log(f"{live} is live; releasing {target} with canary steps {args.steps} under load")
    with Clients(urls, args.clients, args.threads, args.rate, args.path) as clients:
        time.sleep(5)
        run = run_cli(
            ["release", "--version", target, "--canary", args.steps, "-i", args.inventory], 1200
        )
        time.sleep(3)
    journal = read_journal(args.inventory)
    verdicts = [
        r["evidence"]
        for r in journal
        if r.get("release_id") == run.release_id
        and r.get("step") == "canary"
        and "percent" in (r.get("evidence") or {})
    ]
    steps = [step_figures(clients.answers, v, live, target) for v in verdicts]
    failed = sum(not 200 <= a[2] < 300 for a in clients.answers)
    table = Table(title=f"canary {args.steps}: {live} -> {target} ({run.wall_s:.0f} s)")
    for column in ("step %", "share (lb)", "share (clients)", "off by", "requests",
                   "clients", "on both", "verdict", "p latency"):  # fmt: skip
        table.add_column(column, justify="right")
    for s in steps:
        table.add_row(*(str(s[k]) for k in ("percent", "share_lb", "share_clients",
                      "off_by_points", "requests", "clients_seen", "clients_on_both",
                      "verdict", "p_latency")))  # fmt: skip
    Console(stderr=True).print(table)
    within = bool(steps) and all(
        s["off_by_points"] is not None and s["off_by_points"] <= args.tolerance for s in steps
    )
    result = {
        "inventory": args.inventory,
        "release_exit_code": run.exit_code,
        "steps": steps,
        "shares_within_tolerance": within,
        "tolerance_points": args.tolerance,
        "clients_on_both": sum(s["clients_on_both"] for s in steps),
        "flips_back": flips_back(clients.answers, live, target),
        "requests": len(clients.answers),
        "failed": failed,
        "release_s": round(run.wall_s, 1),
    }
    print(json.dumps(result))
    ok = run.exit_code == 0 and within and not result["clients_on_both"] and not failed
    return 0 if ok and not result["flips_back"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
