"""Switch traffic back and forth under load and count what clients see.

    .venv/bin/python bench/switch_under_load.py -i lab-single
    .venv/bin/python bench/switch_under_load.py -i lab --switches 10 --version 2.0.0

First releases the baseline version (B, default 1.0.0) so that the run starts from a
known state, then keeps two client populations busy through nginx (see ``_load``)
while it alternates ``bluegreen release --version A`` and ``bluegreen rollback``.

For each switch, ``switch_ms`` runs from the ``started_at`` of the ``switch`` step in
the release journal to the moment after which every request started on a new
connection is answered (2xx) by the new colour; ``mixed_ms`` is how long before that
moment the new colour already answered some of them (both colours served). Prints a
table, the totals per population and, as the last line, one JSON object. Exits 1 when
a command failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

from _load import (
    KEEPALIVE,
    NEW,
    BenchError,
    CommandRun,
    Load,
    LoadSpec,
    PopulationStats,
    Sample,
    add_tls_options,
    first_answer,
    flip_time,
    log,
    loopback_target,
    maximum,
    median,
    parse_time,
    population_stats,
    read_journal,
    run_cli,
    switch_record,
    target_url,
)
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Switch:
    """One release or rollback during the load, and what the clients saw of it."""

    kind: str
    run: CommandRun
    switch_started: float | None
    switch_ms: float | None
    mixed_ms: float | None
    module_ms: float | None
    new: PopulationStats
    keepalive: PopulationStats

    @property
    def direction(self) -> str:
        stats = self.run.stats
        before = stats.get("bluegreen_previous_colour") or "?"
        after = stats.get("bluegreen_active_colour") or "?"
        return f"{before}->{after}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default="lab", help="inventory name or path")
    parser.add_argument("--url", help="nginx URL; default: port 80 as published in hosts.yml")
    add_tls_options(parser)
    parser.add_argument("--switches", type=int, default=10, help="switch commands to run")
    parser.add_argument("--version", default="2.0.0", help="version A, released each time")
    parser.add_argument("--baseline", default="1.0.0", help="version B, released first")
    parser.add_argument("--new-clients", type=int, default=4, help="new-connection clients")
    parser.add_argument("--keepalive-clients", type=int, default=2, help="keep-alive clients")
    parser.add_argument("--rate", type=float, default=25.0, help="requests/s per client")
    parser.add_argument("--post-share", type=float, default=0.1, help="share of POST /notes")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--settle", type=float, default=3.0, help="load before and after, s")
    parser.add_argument("--command-timeout", type=float, default=600.0, help="per command, s")
    parser.add_argument("--journal", default="/var/lib/bluegreen/sampleapp/journal.jsonl")
    args = parser.parse_args(argv)
    if not 1 <= args.switches <= 100:
        parser.error("--switches must be between 1 and 100")
    if args.rate <= 0 or args.new_clients < 1 or args.keepalive_clients < 0:
        parser.error("--rate must be positive, --new-clients at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.time()
    try:
        url = target_url(args)
        loopback_target(url)
        return run(args, url, began)
    except BenchError as exc:
        log(f"error: {exc}")
        print(json.dumps({"benchmark": "switch_under_load", "error": str(exc)}))
        return 1


def run(args: argparse.Namespace, url: str, began: float) -> int:
    inventory = ["-i", args.inventory]
    log(f"known state: releasing {args.baseline} on {args.inventory}")
    prepared = run_cli(["release", "--version", args.baseline, *inventory], args.command_timeout)
    if prepared.exit_code != 0:
        raise BenchError(
            f"could not bring {args.inventory} to {args.baseline}: {prepared.describe()}"
        )

    spec = LoadSpec(
        url=url,
        new_clients=args.new_clients,
        keepalive_clients=args.keepalive_clients,
        rate=args.rate,
        post_share=args.post_share,
        timeout=args.timeout,
        max_seconds=2 * args.settle + args.switches * args.command_timeout + 60,
    )
    log(
        f"load on {url}: {spec.new_clients} new-connection + {spec.keepalive_clients} "
        f"keep-alive clients at {spec.rate:g} req/s each"
    )
    runs: list[tuple[str, CommandRun]] = []
    with Load(spec) as load:
        time.sleep(args.settle)
        for index in range(args.switches):
            kind = "release" if index % 2 == 0 else "rollback"
            command = (
                ["release", "--version", args.version]
                if kind == "release"
                else ["rollback", "--allow-unverified"]
            )
            done = run_cli([*command, *inventory], args.command_timeout)
            runs.append((kind, done))
            log(
                f"{index + 1}/{args.switches} {kind}: exit {done.exit_code} in {done.wall_s:.1f} s "
                f"({done.report.get('message')})"
            )
            if done.exit_code != 0:
                log("stopping: a command failed")
                break
        time.sleep(args.settle)
    load_ended = time.time()

    journal = read_journal(args.inventory, args.journal)
    switches = measure(runs, journal, load.samples, load_ended)
    new = population_stats(load.samples, NEW)
    keepalive = population_stats(load.samples, KEEPALIVE)
    print_report(switches, new, keepalive, load_ended - began)

    failed_commands = sum(s.run.exit_code != 0 for s in switches)
    summary = {
        "benchmark": "switch_under_load",
        "inventory": args.inventory,
        "url": url,
        "switches": len(switches),
        "commands_failed": failed_commands,
        "requests": new.requests,
        "failed": new.failed,
        "non_2xx": new.non_2xx,
        "switch_ms_median": median(s.switch_ms for s in switches),
        "switch_ms_max": maximum(s.switch_ms for s in switches),
        "switch_ms": [s.switch_ms for s in switches],
        "mixed_ms_max": maximum(s.mixed_ms for s in switches),
        "errors": new.errors,
        "keepalive": {
            "requests": keepalive.requests,
            "failed": keepalive.failed,
            "non_2xx": keepalive.non_2xx,
            "connections": keepalive.connections,
            "errors": keepalive.errors,
        },
        "load": {
            "new_clients": spec.new_clients,
            "keepalive_clients": spec.keepalive_clients,
            "rate_per_client": spec.rate,
            "post_share": spec.post_share,
        },
        "duration_s": round(load_ended - began, 1),
    }
    print(json.dumps(summary))
    return 1 if failed_commands else 0


def measure(
    runs: list[tuple[str, CommandRun]],
    journal: list[dict],
    samples: list[Sample],
    load_ended: float,
) -> list[Switch]:
    """Each command with its switch time and the requests started while it ran."""
    switches = []
    for position, (kind, done) in enumerate(runs):
        record = switch_record(journal, done.release_id)
        window_end = runs[position + 1][1].started if position + 1 < len(runs) else load_ended
        switch_started = parse_time(record["started_at"]) if record else None
        switch_ms = mixed_ms = None
        if switch_started is not None:
            colour = done.stats.get("bluegreen_active_colour")
            mine = [s for s in samples if s.population == NEW]
            flipped = flip_time(mine, switch_started, window_end, colour)
            first = first_answer(mine, switch_started, window_end, colour)
            if flipped is not None and first is not None:
                switch_ms = round(max(0.0, flipped - switch_started) * 1000, 1)
                mixed_ms = round((flipped - first) * 1000, 1)
        module = (record or {}).get("evidence", {}).get("switch_ms") or {}
        during = [s for s in samples if done.started <= s.started <= done.ended]
        switches.append(
            Switch(
                kind=kind,
                run=done,
                switch_started=switch_started,
                switch_ms=switch_ms,
                mixed_ms=mixed_ms,
                module_ms=maximum(float(v) for v in module.values()) if module else None,
                new=population_stats(during, NEW),
                keepalive=population_stats(during, KEEPALIVE),
            )
        )
    return switches


def print_report(
    switches: list[Switch], new: PopulationStats, keepalive: PopulationStats, seconds: float
) -> None:
    console = Console(width=150, highlight=False)
    table = Table(
        title="Switches under load (new = new-connection clients, ka = keep-alive clients; "
        "requests started while the command ran)",
        title_justify="left",
    )
    columns = ["#", "kind", "from->to", "exit", "cmd s", "switch ms", "mixed ms", "module ms"]
    columns += ["new req", "new fail", "new non2xx", "ka req", "ka fail", "ka non2xx"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("kind", "from->to") else "right")
    for number, switch in enumerate(switches, 1):
        table.add_row(
            str(number),
            switch.kind,
            switch.direction,
            str(switch.run.exit_code),
            f"{switch.run.wall_s:.1f}",
            _ms(switch.switch_ms),
            _ms(switch.mixed_ms),
            _ms(switch.module_ms),
            str(switch.new.requests),
            str(switch.new.failed),
            str(switch.new.non_2xx),
            str(switch.keepalive.requests),
            str(switch.keepalive.failed),
            str(switch.keepalive.non_2xx),
        )
    console.print(table)

    totals = Table(title=f"Totals over {seconds:.0f} s", title_justify="left")
    for column in (
        "clients",
        "requests",
        "POST",
        "failed",
        "non-2xx",
        "connections",
        "p50 ms",
        "p99 ms",
        "errors",
    ):
        totals.add_column(column, justify="left" if column in ("clients", "errors") else "right")
    for name, stats in (("new-connection", new), ("keep-alive", keepalive)):
        totals.add_row(
            name,
            str(stats.requests),
            str(stats.posts),
            str(stats.failed),
            str(stats.non_2xx),
            str(stats.connections),
            _ms(stats.p50_ms),
            _ms(stats.p99_ms),
            ", ".join(f"{k}: {v}" for k, v in sorted(stats.errors.items())) or "-",
        )
    console.print(totals)
    failed = [s for s in switches if s.run.exit_code != 0]
    for switch in failed:
        console.print(f"[bold red]failed:[/] {switch.run.describe()}", soft_wrap=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
