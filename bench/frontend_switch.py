"""Releases and rollbacks under page loads of the service's single-page frontend: no
client may get a page of one version with a script or style of the other.

    .venv/bin/python bench/frontend_switch.py -i lab
    .venv/bin/python bench/frontend_switch.py -i lab --switches 6 --clients 8

The inventory must serve a frontend (bluegreen_service_frontend_path; the lab serves the
sample's at /ui/). Releases the first version (the analysis off, in a copy of the
inventory as bench/release_time.py makes it), then, while ``--clients`` browsers load
the page and each asset it names over keep-alive connections (bench/_load's PageLoads,
``--think-ms`` between requests, so switches fall between a page and its assets), runs
``--switches`` commands: a release of the second version, then a rollback, alternately.
Each page names its version (a meta tag), each content-hashed asset its own; a page
load is *mixed* when an asset's version differs from its page's. ``cross_colour_assets``
counts assets the other colour served because the page's colour had switched releases
in between: what keeps those loads whole. Prints a table and, last, one JSON object.
Exits 1 when a command failed, a page load was mixed or failed, or no page saw both
versions.
"""

from __future__ import annotations

import argparse
import json
import sys

from _load import BenchError, PageLoads, inventory_url, log, run_cli
from release_time import bench_inventory
from rich.console import Console
from rich.table import Table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-i", "--inventory", default="lab")
    parser.add_argument("--path", default="/ui/", help="the frontend's public path")
    parser.add_argument("--versions", nargs=2, default=["2.0.0", "2.1.0"], metavar="V")
    parser.add_argument("--switches", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--think-ms", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    inventory = bench_inventory(args.inventory)
    url = inventory_url(args.inventory)
    first, second = args.versions
    runs = []
    try:
        baseline = run_cli(["release", "--version", first, "-i", inventory], args.timeout)
        if baseline.exit_code != 0:
            raise BenchError(baseline.describe())
        with PageLoads(url, args.path, args.clients, args.think_ms / 1000) as pages:
            for index in range(args.switches):
                # After a rollback the idle colour still runs the second version: each
                # command below moves traffic.
                command = (
                    ["release", "--version", second]
                    if index % 2 == 0
                    else ["rollback", "--allow-unverified"]
                )
                run = run_cli([*command, "-i", inventory], args.timeout)
                log(f"{' '.join(command)}: exit {run.exit_code} in {run.wall_s} s")
                runs.append(run)
                if run.exit_code != 0:
                    raise BenchError(run.describe())
        summary = pages.summary()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"benchmark": "frontend_switch", "error": str(exc)}))
        return 1
    table = Table(title=f"Page loads of {args.path} through {args.switches} switches")
    columns = ("pages", "failed", "mixed", "cross_colour_assets", "retried_on_closed_keepalive")
    for key in columns:
        table.add_column(key, justify="right")
    table.add_row(*(str(summary[key]) for key in columns))
    Console().print(table)
    result = {
        "benchmark": "frontend_switch",
        "inventory": args.inventory,
        "switches": len(runs),
        "clients": args.clients,
        "think_ms": args.think_ms,
        "commands_s": [run.wall_s for run in runs],
        **summary,
    }
    print(json.dumps(result))
    whole = summary["mixed"] == 0 and summary["failed"] == 0
    return 0 if whole and len(summary["versions"]) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
