"""Automatic rollback under steady load: how fast bad golden signals send traffic back.

For each fault version (default: one answering 30 % 5xx, one adding 1.5 s of latency,
both degrading only after 200 requests, past their smoke probes and the pre-switch load
step), under steady load through nginx: release the known-good version, then release the
faulty one with default settings and measure, from the journal's switch and the answers
the clients saw:

- detect_s: from the switch to the post-switch analysis deciding to fail;
- rollback_s: from the switch to every new request being answered by the old colour;
- failed_requests_after_rollback: failed or non-2xx answers to requests started after that.

Prints a table and, as its last line, one JSON object. Traffic goes only to 127.0.0.1.

    .venv/bin/python bench/auto_rollback.py -i lab
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _load import (
    NEW,
    BenchError,
    Load,
    LoadSpec,
    flip_time,
    inventory_url,
    live_colour,
    log,
    parse_time,
    read_journal,
    restart_colour,
    run_cli,
    switch_record,
)
from rich.console import Console
from rich.table import Table

# Both degrade after 200 requests: past the smoke probes and the pre-switch load step
# (50 requests), so only the post-switch analysis on real traffic can catch them.
FAULTS = ("2.0.3+errors30.after200req", "2.0.4+slow1500.after200req")


def step_record(journal: list[dict], release_id: str, step: str) -> dict | None:
    return next(
        (r for r in journal if r.get("release_id") == release_id and r.get("step") == step), None
    )


def measure_fault(args: argparse.Namespace, url: str, version: str) -> dict:
    release_good = run_cli(["release", "--version", args.good, "-i", args.inventory], args.timeout)
    if release_good.exit_code != 0:
        raise BenchError(f"could not bring {args.good} live: {release_good.describe()}")
    old_colour = live_colour(url)
    restart_colour(args.inventory, "blue" if old_colour == "green" else "green")
    spec = LoadSpec(url=url, new_clients=args.clients, keepalive_clients=0, rate=args.rate)
    with Load(spec) as load:
        time.sleep(args.settle)
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
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab")
    parser.add_argument("--url", default=None)
    parser.add_argument("--good", default="2.0.0", help="known-good version (default 2.0.0)")
    parser.add_argument("--faults", nargs="+", default=list(FAULTS))
    parser.add_argument("--clients", type=int, default=16, help="new-connection clients (16)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per client (5)")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    url = args.url or inventory_url(args.inventory)
    rows = []
    for version in args.faults:
        log(f"releasing faulty {version} under load on {url}")
        rows.append(measure_fault(args, url, version))
        log(f"{version}: {rows[-1]}")
    table = Table(title="Automatic rollback under load")
    for column in ("version", "exit", "outcome", "detect s", "rollback s", "failed after"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["version"],
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
