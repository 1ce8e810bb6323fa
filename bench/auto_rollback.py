"""Automatic rollback under steady load: how fast bad golden signals send traffic back.

For each fault version, under steady load through nginx: release the known-good version,
then release the faulty one and measure, from the journal's switch and the answers the
clients saw. The faults, each degrading only after 200 requests (past their smoke probes
and the pre-switch load step): 30 % 5xx, 1.5 s of latency, 20 ms of CPU per request,
1 MB kept per request, a logged traceback per request (answered 200); and a healthy
build whose colour loses a declared dependency once live (its host resolves the
dependency's name to a closed port from the switch on). The analysis runs with default settings plus
what a team sets for its service: caps of 15 ms of CPU per request and 150 MB for its
processes, and the dependency declared (`--no-caps` leaves them out). Measured:

- detect_s: from the switch to the post-switch analysis deciding to fail;
- rollback_s: from the switch to every new request being answered by the old colour;
- failed_requests_after_rollback: failed or non-2xx answers to requests started after that;
- signal: the signal the rollback named first.

Prints a table and, as its last line, one JSON object. Traffic goes only to 127.0.0.1.

    .venv/bin/python bench/auto_rollback.py -i lab
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time

from _load import (
    NEW,
    BenchError,
    Load,
    LoadSpec,
    add_tls_options,
    flip_time,
    live_colour,
    log,
    parse_time,
    point_catalog,
    read_journal,
    restart_colour,
    run_cli,
    shell,
    switch_record,
    target_url,
    team_settings,
)
from rich.console import Console
from rich.table import Table

# Both degrade after 200 requests: past the smoke probes and the pre-switch load step
# (50 requests), so only the post-switch analysis on real traffic can catch them.
FAULTS = (
    "2.0.3+errors30.after200req",
    "2.0.4+slow1500.after200req",
    "2.0.7+cpu20.after200req",
    "2.0.8+leak1.after200req",
    "2.0.9+tracebacks.after200req",
    "2.0.11+dependency",
)
# The build that is healthy but whose colour cannot reach the declared catalog.
DEPENDENCY_FAULT = "2.0.11+dependency"
SIGNAL = re.compile(r"; (\w+): ")


def break_once_live(inventory: str, url: str, colour: str, limit_s: float = 300) -> None:
    """Once traffic is on `colour`, its host resolves the catalog to a closed port: the
    new colour loses its dependency after it went live (past the preflight's probe)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if live_colour(url) == colour:
            point_catalog(inventory, f"app-{colour}", "127.0.0.1")
            return
        time.sleep(0.2)


def step_record(journal: list[dict], release_id: str, step: str) -> dict | None:
    return next(
        (r for r in journal if r.get("release_id") == release_id and r.get("step") == step), None
    )


def measure_fault(args: argparse.Namespace, url: str, version: str) -> dict:
    release_good = run_cli(["release", "--version", args.good, "-i", args.inventory], args.timeout)
    if release_good.exit_code != 0:
        raise BenchError(f"could not bring {args.good} live: {release_good.describe()}")
    old_colour = live_colour(url)
    idle = "blue" if old_colour == "green" else "green"
    restart_colour(args.inventory, idle)
    breaker = None
    if version == DEPENDENCY_FAULT:
        breaker = threading.Thread(
            target=break_once_live, args=(args.inventory, url, idle), daemon=True
        )
    spec = LoadSpec(url=url, new_clients=args.clients, keepalive_clients=0, rate=args.rate)
    with Load(spec) as load:
        time.sleep(args.settle)
        if breaker is not None:
            breaker.start()
        run = run_cli(["release", "--version", version, "-i", args.inventory], args.timeout)
        time.sleep(args.settle)
    journal = read_journal(args.inventory)
    switch = switch_record(journal, run.release_id)
    analysis = step_record(journal, run.release_id or "", "analysis")
    row = {"version": version, "exit_code": run.exit_code, "outcome": run.report.get("outcome")}
    if switch is None:
        row["error"] = f"the faulty release never switched: {run.describe()}"
        return row
    switched_at = parse_time(switch["started_at"])
    back_at = flip_time(load.samples, switched_at, time.time() + 1, old_colour or "")
    after = [s for s in load.samples if back_at is not None and s.started >= back_at]
    row |= {
        "detect_s": round(parse_time(analysis["finished_at"]) - switched_at, 2)
        if analysis
        else None,
        "rollback_s": round(back_at - switched_at, 2) if back_at else None,
        "failed_requests_after_rollback": sum(1 for s in after if not s.ok),
        "requests_after_rollback": len(after),
        "failed_requests_during": sum(
            1 for s in load.samples if s.population == NEW and not s.ok and s.started >= switched_at
        ),
        "analysis": analysis.get("message") if analysis else None,
    }
    # The command's message names every signal that was not healthy: the first is the one.
    row["message"] = run.report.get("message")
    named = SIGNAL.search(str(row["message"] or ""))
    row["signal"] = named.group(1) if named else None
    if version == DEPENDENCY_FAULT:
        db1 = shell(args.inventory, f"app-{old_colour}", "getent hosts db1 | cut -d' ' -f1")
        point_catalog(args.inventory, f"app-{idle}", db1.strip())
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab")
    parser.add_argument("--url", default=None)
    add_tls_options(parser)
    parser.add_argument("--good", default="2.0.0", help="known-good version (default 2.0.0)")
    parser.add_argument("--faults", nargs="+", default=list(FAULTS))
    parser.add_argument("--clients", type=int, default=16, help="new-connection clients (16)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per client (5)")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--no-caps",
        dest="caps",
        action="store_false",
        help="default thresholds only, no dependency declared (the CPU, memory and "
        "dependency faults then go live)",
    )
    args = parser.parse_args()
    url = target_url(args)
    rows = []
    with team_settings(args.inventory, args.caps):
        for version in args.faults:
            log(f"releasing faulty {version} under load on {url}")
            rows.append(measure_fault(args, url, version))
            log(f"{version}: {rows[-1]}")
    table = Table(title="Automatic rollback under load")
    for column in (
        "version",
        "signal",
        "exit",
        "outcome",
        "detect s",
        "rollback s",
        "failed after",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["version"],
            str(row.get("signal")),
            str(row["exit_code"]),
            str(row["outcome"]),
            str(row.get("detect_s")),
            str(row.get("rollback_s")),
            str(row.get("failed_requests_after_rollback")),
        )
    Console(stderr=True).print(table)
    print(json.dumps({"benchmark": "auto_rollback", "inventory": args.inventory, "faults": rows}))
    return 0 if all(r["exit_code"] == 4 for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"auto_rollback: {exc}", file=sys.stderr)
        sys.exit(2)
