"""How long `bluegreen rollback` takes to put all traffic back on the other colour.

    .venv/bin/python bench/rollback_time.py -i lab-single
    .venv/bin/python bench/rollback_time.py -i lab --runs 5
    .venv/bin/python bench/rollback_time.py -i lab --clients 8

Makes sure both colours run and are healthy (releasing the baseline, then the version,
when they are not), then runs ``bluegreen rollback`` K times; each run goes back to the
colour the previous one left, so the direction alternates. A probe sends one request on
a new connection every ~20 ms through nginx.

``rollback_s`` runs from just before the command is spawned to the start of the first of
the consecutive probes (at least 20, up to the command's end) answered by the target
colour: from then on, all traffic is on the old colour. ``command_s`` is the command's
wall time. The journal splits each run into: start-up (process and ansible-playbook start,
up to the rollback's own ``started_at``), checks (lock, live colour, health) up to the
``switch`` step, and the switch itself; the run's job events say which tasks cost what.
With ``--clients N``, N clients (new connections, 25 req/s each, 10 % POST; bench/_load's
Load) send traffic through nginx during every rollback, as a loaded service has; the
JSON says how many of their requests got no answer. Prints a table of the runs, one of
the plays and one of the costliest tasks, and as the
last line one JSON object. Exits 1 when a rollback failed or traffic did not settle on
the target colour.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field

from _load import (
    BenchError,
    CommandRun,
    Load,
    LoadSpec,
    add_tls_options,
    answering_colour,
    live_colour,
    log,
    loopback_target,
    maximum,
    median,
    parse_time,
    print_profile,
    read_journal,
    run_cli,
    switch_record,
    target_url,
)
from rich.console import Console
from rich.table import Table

TARGET_S = 5.0


@dataclass
class Probe:
    """A new-connection request every ``interval`` s until traffic settled on ``colour``.

    Settled means: the command has ended and the last ``streak`` answers or more all came
    from ``colour``. Stops when told the command failed (traffic will not move: a refused
    rollback), and by itself after ``max_seconds`` in any case.
    """

    url: str
    colour: str
    interval: float = 0.02
    streak: int = 20
    timeout: float = 2.0
    max_seconds: float = 660.0
    command_done: threading.Event = field(default_factory=threading.Event)
    give_up: threading.Event = field(default_factory=threading.Event)
    streak_started: float | None = None
    streak_length: int = 0
    answers: int = 0
    others: int = 0
    failed: int = 0

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(int(self.max_seconds / self.interval) + 1):
            if time.monotonic() >= deadline or self.give_up.is_set():
                break
            started = time.time()
            colour = answering_colour(self.url, self.timeout)
            self.answers += 1
            if colour == self.colour:
                if self.streak_length == 0:
                    self.streak_started = started
                self.streak_length += 1
            else:
                self.others += colour is not None
                self.failed += colour is None
                self.streak_started, self.streak_length = None, 0
            if self.command_done.is_set() and self.streak_length >= self.streak:
                break
            time.sleep(max(0.0, started + self.interval - time.time()))

    @property
    def settled(self) -> bool:
        return self.streak_length >= self.streak


@dataclass
class Rollback:
    """One measured rollback."""

    source: str
    target: str
    run: CommandRun
    probe: Probe
    startup_s: float | None = None
    switch_step_s: float | None = None

    @property
    def rollback_s(self) -> float | None:
        if not self.probe.settled or self.probe.streak_started is None:
            return None
        return round(self.probe.streak_started - self.run.started, 3)

    @property
    def ok(self) -> bool:
        return self.run.exit_code == 0 and self.rollback_s is not None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default="lab", help="inventory name or path")
    parser.add_argument("--url", help="nginx URL; default: port 80 as published in hosts.yml")
    add_tls_options(parser)
    parser.add_argument("--runs", type=int, default=3, help="rollbacks to measure")
    parser.add_argument("--baseline", default="1.0.0", help="released first when not warm")
    parser.add_argument("--version", default="2.0.0", help="released second when not warm")
    parser.add_argument("--streak", type=int, default=20, help="consecutive probes that settle")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--command-timeout", type=float, default=600.0, help="per command, s")
    parser.add_argument("--top", type=int, default=12, help="costliest tasks to list")
    parser.add_argument(
        "--clients", type=int, default=0, help="load clients during the rollbacks (0: quiet)"
    )
    parser.add_argument("--journal", default="/var/lib/bluegreen/sampleapp/journal.jsonl")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")
    if args.streak < 1 or args.interval <= 0:
        parser.error("--streak must be at least 1 and --interval positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        url = target_url(args)
        loopback_target(url)
        return run(args, url)
    except BenchError as exc:
        log(f"error: {exc}")
        print(json.dumps({"benchmark": "rollback_time", "error": str(exc)}))
        return 1


def run(args: argparse.Namespace, url: str) -> int:
    ensure_warm(args)
    if args.clients <= 0:
        return measure(args, url, None)
    spec = LoadSpec(
        url=url,
        new_clients=args.clients,
        keepalive_clients=0,
        max_seconds=args.runs * (args.command_timeout + 60) + 60,
    )
    log(f"load on {url}: {spec.new_clients} clients at {spec.rate:g} req/s each")
    with Load(spec) as load:
        time.sleep(2)
        return measure(args, url, load)


def measure(args: argparse.Namespace, url: str, load: Load | None) -> int:
    rollbacks: list[Rollback] = []
    for number in range(1, args.runs + 1):
        source = live_colour(url)
        if source not in ("blue", "green"):
            raise BenchError(f"nginx at {url} answers without a colour ({source!r})")
        target = "green" if source == "blue" else "blue"
        probe = Probe(
            url=url,
            colour=target,
            interval=args.interval,
            streak=args.streak,
            max_seconds=args.command_timeout + 60,
        )
        prober = threading.Thread(target=probe.run, name="probe", daemon=True)
        prober.start()
        started = time.time()
        done = run_cli(
            ["rollback", "--allow-unverified", "-i", args.inventory],
            args.command_timeout,
            started=started,
        )
        if done.exit_code != 0:
            probe.give_up.set()
        probe.command_done.set()
        prober.join(timeout=probe.max_seconds)
        rollback = Rollback(source, target, done, probe)
        rollbacks.append(rollback)
        log(
            f"{number}/{args.runs} rollback {source}->{target}: exit {done.exit_code}, "
            f"traffic moved after {rollback.rollback_s} s, command {done.wall_s:.2f} s"
        )
        if done.exit_code != 0:
            log(f"stopping: {done.describe()}")
            break

    add_journal_times(rollbacks, read_journal(args.inventory, args.journal))
    print_runs(rollbacks)
    print_profile([rollback.run for rollback in rollbacks], args.top)
    summary = {
        "benchmark": "rollback_time",
        "inventory": args.inventory,
        "url": url,
        "runs": len(rollbacks),
        "failed_runs": sum(not r.ok for r in rollbacks),
        "rollback_s": median(r.rollback_s for r in rollbacks),
        "rollback_s_max": maximum(r.rollback_s for r in rollbacks),
        "command_s": median(r.run.wall_s for r in rollbacks),
        "command_s_max": maximum(r.run.wall_s for r in rollbacks),
        "startup_s": median(r.startup_s for r in rollbacks),
        "switch_step_s": median(r.switch_step_s for r in rollbacks),
        "per_run_rollback_s": [r.rollback_s for r in rollbacks],
        "clients": args.clients,
        "load_unanswered": None if load is None else sum(x.failed for x in load.samples),
        "load_requests": None if load is None else len(load.samples),
        "target_s": TARGET_S,
    }
    print(json.dumps(summary))
    return 0 if all(r.ok for r in rollbacks) else 1


def ensure_warm(args: argparse.Namespace) -> None:
    """Both colours running and healthy; else release the baseline, then the version."""
    inventory = ["-i", args.inventory]
    status = run_cli(["status", *inventory], args.command_timeout)
    colours = ((status.report.get("status") or {}).get("colours")) or {}
    warm = len(colours) == 2 and all(
        info.get("healthy") and info.get("version") for info in colours.values()
    )
    if status.exit_code == 0 and warm:
        versions = ", ".join(f"{c} {info['version']}" for c, info in colours.items())
        log(f"both colours warm: {versions}")
        return
    for version in (args.baseline, args.version):
        log(f"warming up: releasing {version} on {args.inventory}")
        done = run_cli(["release", "--version", version, *inventory], args.command_timeout)
        if done.exit_code != 0:
            raise BenchError(f"could not warm up {args.inventory}: {done.describe()}")


def add_journal_times(rollbacks: list[Rollback], journal: list[dict]) -> None:
    """Split each run by its journal: start-up until the rollback's ``started_at``, and the
    ``switch`` step's start."""
    for rollback in rollbacks:
        release_id = rollback.run.release_id
        whole = next(
            (
                r
                for r in journal
                if r.get("release_id") == release_id and r.get("step") == "rollback"
            ),
            None,
        )
        if whole and whole.get("started_at"):
            rollback.startup_s = round(parse_time(whole["started_at"]) - rollback.run.started, 3)
        record = switch_record(journal, release_id)
        if record and record.get("started_at"):
            switch_started = parse_time(record["started_at"])
            rollback.switch_step_s = round(switch_started - rollback.run.started, 3)


def print_runs(rollbacks: list[Rollback]) -> None:
    console = Console(width=150, highlight=False)
    table = Table(
        title=f"Rollbacks (seconds from the command's start; target {TARGET_S:g} s)",
        title_justify="left",
    )
    columns = ["#", "from->to", "exit", "start-up", "switch step", "traffic moved", "command"]
    columns += ["probes", "other colour", "no answer"]
    for column in columns:
        table.add_column(column, justify="left" if column == "from->to" else "right")
    for number, rollback in enumerate(rollbacks, 1):
        table.add_row(
            str(number),
            f"{rollback.source}->{rollback.target}",
            str(rollback.run.exit_code),
            _s(rollback.startup_s),
            _s(rollback.switch_step_s),
            _s(rollback.rollback_s),
            _s(rollback.run.wall_s),
            str(rollback.probe.answers),
            str(rollback.probe.others),
            str(rollback.probe.failed),
        )
    console.print(table)
    for rollback in rollbacks:
        if not rollback.ok:
            console.print(f"[bold red]failed:[/] {rollback.run.describe()}", soft_wrap=True)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
