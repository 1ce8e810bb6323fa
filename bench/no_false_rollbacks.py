"""No false rollbacks: healthy releases under steady load must all pass post-switch analysis.

Alternates releases of two healthy versions (default 2.0.0 and 2.1.0) N times (default 10)
under steady load through nginx, with every signal on: the default analysis (load
balancer signals, the colour's CPU, memory, disk and log, the comparison with the old
colour before the switch) plus what a team sets for its service (caps on CPU per request
and memory, a declared dependency; `--no-caps` leaves them out), and counts the releases
that were rolled back or whose analysis did not pass. Last line: one JSON object with
`releases`, `false_rollbacks`, `passed`, `not_passed` and, per release, the signals that
were not ok.

    .venv/bin/python bench/no_false_rollbacks.py -i lab
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _load import (
    BenchError,
    Load,
    LoadSpec,
    add_tls_options,
    live_version,
    log,
    run_cli,
    target_url,
    team_settings,
)
from rich.console import Console
from rich.table import Table


def not_ok(analysis: object) -> dict[str, str]:
    """The signals (and comparison) of the last measurement that were not ok: their verdicts."""
    if not isinstance(analysis, dict):
        return {}
    found = {
        name: str(signal.get("verdict"))
        for name, signal in (analysis.get("signals") or {}).items()
        if isinstance(signal, dict) and signal.get("verdict") not in ("ok", "not_configured")
    }
    comparison = analysis.get("comparison") or {}
    for name in ("latency_p50_ratio", "latency_p95_ratio", "error_rate_diff"):
        verdict = (comparison.get(name) or {}).get("verdict")
        if verdict not in (None, "ok"):
            found[name] = str(verdict)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab")
    parser.add_argument("--url", default=None)
    add_tls_options(parser)
    parser.add_argument("--versions", nargs=2, default=["2.0.0", "2.1.0"])
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8, help="new-connection clients (8)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per client (5)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-caps", dest="caps", action="store_false")
    args = parser.parse_args()
    url = target_url(args)
    rows = []
    # Start with the version that is not live, so that every release really switches.
    if live_version(url) == args.versions[0]:
        args.versions.reverse()
    spec = LoadSpec(url=url, new_clients=args.clients, keepalive_clients=0, rate=args.rate)
    with team_settings(args.inventory, args.caps), Load(spec) as load:
        time.sleep(3)
        for index in range(args.releases):
            version = args.versions[index % 2]
            run = run_cli(["release", "--version", version, "-i", args.inventory], args.timeout)
            analysis = run.stats.get("bluegreen_analysis") or {}
            decision = (analysis.get("decision") or {}) if isinstance(analysis, dict) else {}
            rows.append(
                {
                    "version": version,
                    "exit_code": run.exit_code,
                    "outcome": run.report.get("outcome"),
                    "analysis": decision.get("action"),
                    "verdict": decision.get("verdict"),
                    "reason": decision.get("reason"),
                    "requests": analysis.get("requests") if isinstance(analysis, dict) else None,
                    "not_ok": not_ok(analysis),
                }
            )
            log(f"{index + 1}/{args.releases} {version}: {rows[-1]}")
    failed = sum(1 for s in load.samples if not s.ok)
    table = Table(title="Healthy releases under load")
    for column in ("#", "version", "exit", "outcome", "analysis", "verdict"):
        table.add_column(column)
    for index, row in enumerate(rows, 1):
        table.add_row(
            str(index),
            row["version"],
            str(row["exit_code"]),
            str(row["outcome"]),
            str(row["analysis"]),
            str(row["verdict"]),
        )
    Console(stderr=True).print(table)
    summary = {
        "benchmark": "no_false_rollbacks",
        "inventory": args.inventory,
        "releases": len(rows),
        "false_rollbacks": sum(1 for r in rows if r["outcome"] == "rolled_back"),
        "passed": sum(1 for r in rows if r["analysis"] == "pass"),
        "not_passed": sum(1 for r in rows if r["analysis"] != "pass"),
        "failed_requests": failed,
        "requests": len(load.samples),
        "releases_detail": rows,
    }
    print(json.dumps(summary))
    return 0 if summary["false_rollbacks"] == 0 and summary["not_passed"] == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"no_false_rollbacks: {exc}", file=sys.stderr)
        sys.exit(2)
