"""Pre-switch analysis: what it adds to a release, and how soon it refuses a slow build.

Releases two healthy versions in turn (default 1.0.0 and 2.0.0, `--releases` times) under
steady load through nginx, then a build that is slow from its start (default
2.0.4+slow1500), and reads the release journal:

- pre_switch_s: the `pre_switch_analysis` step, from its start to its record (baseline
  scrape, the load step, the judgement, journaling);
- gap_s: from the end of the `deploy` step to the start of the `switch` step, i.e. the
  whole pre-switch play plus the switch play's preamble;
- for the slow build: its exit code (3 expected), whether traffic ever left the live
  colour, and refused_after_deploy_s (deploy end to the release's failure record).

Last line: one JSON object. Traffic goes only to 127.0.0.1.

    .venv/bin/python bench/pre_switch.py -i lab
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from _load import (
    BenchError,
    Load,
    LoadSpec,
    add_tls_options,
    live_colour,
    live_version,
    log,
    parse_time,
    read_journal,
    run_cli,
    target_url,
)
from rich.console import Console
from rich.table import Table


def records(journal: list[dict], release_id: str | None) -> dict[str, list[dict]]:
    steps: dict[str, list[dict]] = {}
    for record in journal:
        if release_id and record.get("release_id") == release_id:
            steps.setdefault(record.get("step", ""), []).append(record)
    return steps


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round(parse_time(end) - parse_time(start), 2)


def release_row(args: argparse.Namespace, version: str) -> dict:
    run = run_cli(["release", "--version", version, "-i", args.inventory], args.timeout)
    steps = records(read_journal(args.inventory), run.release_id)
    pre = (steps.get("pre_switch_analysis") or [{}])[0]
    deploy = (steps.get("deploy") or [{}])[0]
    switch = (steps.get("switch") or [{}])[0]
    failed = (steps.get("pre_switch_analysis") or [{}])[-1]
    stats = run.stats.get("bluegreen_pre_switch_analysis") or {}
    return {
        "version": version,
        "exit_code": run.exit_code,
        "outcome": run.report.get("outcome"),
        "release_s": run.wall_s,
        "pre_switch_s": seconds(pre.get("started_at"), pre.get("finished_at")),
        "gap_s": seconds(deploy.get("finished_at"), switch.get("started_at")),
        "refused_after_deploy_s": None
        if switch
        else seconds(deploy.get("finished_at"), failed.get("finished_at")),
        "verdict": stats.get("verdict"),
        "requests": stats.get("requests"),
        "switched": bool(switch),
        "message": run.report.get("message") if run.exit_code else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab")
    parser.add_argument("--url", default=None)
    add_tls_options(parser)
    parser.add_argument("--versions", nargs=2, default=["1.0.0", "2.0.0"])
    parser.add_argument("--releases", type=int, default=4)
    parser.add_argument("--slow", default="2.0.4+slow1500", help="build refused before the switch")
    parser.add_argument("--clients", type=int, default=4, help="new-connection clients (4)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per client (5)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    url = target_url(args)
    if live_version(url) == args.versions[0]:
        args.versions.reverse()
    rows = []
    spec = LoadSpec(url=url, new_clients=args.clients, keepalive_clients=0, rate=args.rate)
    with Load(spec) as load:
        time.sleep(3)
        for index in range(args.releases):
            rows.append(release_row(args, args.versions[index % 2]))
            log(f"{index + 1}/{args.releases}: {rows[-1]}")
        before = live_colour(url)
        started = time.time()
        slow = release_row(args, args.slow)
        log(f"{args.slow}: {slow}")
    left_live = sum(
        1 for s in load.samples if s.started >= started and s.colour not in (None, before)
    )
    slow["requests_answered_by_other_colour"] = left_live
    healthy = [r["pre_switch_s"] for r in rows if r["pre_switch_s"] is not None]
    gaps = [r["gap_s"] for r in rows if r["gap_s"] is not None]
    table = Table(title="Pre-switch analysis")
    for column in ("version", "exit", "outcome", "release s", "pre-switch s", "gap s", "verdict"):
        table.add_column(column)
    for row in [*rows, slow]:
        table.add_row(
            row["version"],
            str(row["exit_code"]),
            str(row["outcome"]),
            str(row["release_s"]),
            str(row["pre_switch_s"]),
            str(row["gap_s"] if row["switched"] else row["refused_after_deploy_s"]),
            str(row["verdict"]),
        )
    Console(stderr=True).print(table)
    summary = {
        "benchmark": "pre_switch",
        "inventory": args.inventory,
        "pre_switch_s_median": round(statistics.median(healthy), 2) if healthy else None,
        "pre_switch_s_max": max(healthy, default=None),
        "gap_s_median": round(statistics.median(gaps), 2) if gaps else None,
        "release_s_median": round(statistics.median(r["release_s"] for r in rows), 2)
        if rows
        else None,
        "healthy": rows,
        "slow": slow,
        "failed_requests": sum(1 for s in load.samples if not s.ok),
    }
    print(json.dumps(summary))
    passed = all(r["exit_code"] == 0 for r in rows)
    return 0 if passed and slow["exit_code"] == 3 and not slow["switched"] and not left_live else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"pre_switch: {exc}", file=sys.stderr)
        sys.exit(2)
