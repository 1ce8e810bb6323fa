"""Insert rows through nginx during releases, failed migrations and a data rollback; lose none.

    .venv/bin/python bench/no_lost_writes.py --lab lab --single lab-single
    .venv/bin/python bench/no_lost_writes.py --only sqlite_migration_fails --single lab-single

A writer (``_load.Writer``) posts notes with unique bodies through nginx for the whole of
each scenario. A write is acknowledged when it got a 2xx with the note's id. Afterwards
every acknowledged note is read back through nginx (same id, same body). Writes answered
503 with Retry-After (maintenance mode) were not acknowledged and are counted apart;
a client retries them. Scenarios, in order (each leaves what the next one needs):

- postgresql_migration: 1.0.0 -> 2.0.0 (migration 0002, expand) on the PostgreSQL lab;
- postgresql_migration_fails: 2.0.0 -> 2.0.5+migfail (0003 fails halfway; transactional
  DDL rolls it back), must exit 3;
- postgresql_rollback_with_data: ``rollback --with-data`` (0002 downgraded, traffic on 1.0.0);
- sqlite_migration, sqlite_migration_fails, sqlite_rollback_with_data: the same on the
  single host with SQLite (the migration runs in a maintenance window; the failed one is
  undone by restoring the snapshot taken inside it);
- container_migration, container_rollback_with_data: the sample in the container runtime
  (``containerapp``, tests/integration/services/containerapp.yml: one Compose project per
  colour, migrations in a one-off container of the new image, SQLite) beside the single
  host's own service, written to through the port that host publishes for its site
  (``--container``; the inventory is written from the lab's, as its lab test writes it).
  Its images come from ``make image-artifacts``.

Prints one line per scenario and, last, one JSON object with ``acknowledged``, ``present``
and ``lost`` per scenario. Exits 1 when a write was lost or a command did not end as
expected.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import yaml
from _load import (
    PROJECT,
    BenchError,
    CommandRun,
    Writer,
    check_writes,
    connect,
    inventory_url,
    log,
    run_cli,
    side_inventory,
)

BASE = "1.0.0"
NEW = "2.0.0"
MIGFAIL = "2.0.5+migfail"
BASE_REVISION = "0001"


@dataclass(frozen=True)
class Scenario:
    name: str
    engine: str  # which lab: postgresql (--lab) or sqlite (--single)
    args: tuple[str, ...]
    expected_exit: int


SCENARIOS = [
    Scenario("postgresql_migration", "postgresql", ("release", "--version", NEW), 0),
    Scenario("postgresql_migration_fails", "postgresql", ("release", "--version", MIGFAIL), 3),
    Scenario("postgresql_rollback_with_data", "postgresql", ("rollback", "--with-data"), 0),
    Scenario("sqlite_migration", "sqlite", ("release", "--version", NEW), 0),
    Scenario("sqlite_migration_fails", "sqlite", ("release", "--version", MIGFAIL), 3),
    Scenario("sqlite_rollback_with_data", "sqlite", ("rollback", "--with-data"), 0),
    Scenario("container_migration", "container", ("release", "--version", NEW), 0),
    Scenario("container_rollback_with_data", "container", ("rollback", "--with-data"), 0),
]
CONTAINER_SERVICE = PROJECT / "tests" / "integration" / "services" / "containerapp.yml"


def health(url: str) -> dict:
    """The live colour's /health answer through nginx (it bypasses maintenance mode)."""
    import http.client

    conn = connect(url, 10)
    try:
        conn.request("GET", "/health", headers={"Connection": "close"})
        response = conn.getresponse()
        return json.loads(response.read() or b"{}") if response.status == 200 else {}
    except (OSError, ValueError, http.client.HTTPException):
        return {}
    finally:
        conn.close()


def must(run: CommandRun, *expected: int) -> CommandRun:
    if run.exit_code not in expected:
        raise BenchError(f"setup failed: {run.describe()}")
    return run


def prepare(inventory: str, url: str, timeout: float) -> None:
    """Bring the lab to 1.0.0 live on schema 0001, with the data rollback if need be."""
    for _ in range(3):
        state = health(url)
        if state.get("version") == BASE and state.get("schema_revision") == BASE_REVISION:
            return
        if state.get("version") == NEW:
            log(f"{inventory}: {NEW} is live; rollback --with-data to reach {BASE_REVISION}")
            run = run_cli(
                ["rollback", "--with-data", "--allow-unverified", "-i", inventory], timeout
            )
            if run.exit_code == 0:
                continue
            log(f"  {run.describe()}")
        log(f"{inventory}: releasing {NEW} then rolling back with data, to reach {BASE}")
        must(run_cli(["release", "--version", BASE, "-i", inventory], timeout), 0)
        must(run_cli(["release", "--version", NEW, "-i", inventory], timeout), 0)
    state = health(url)
    raise BenchError(
        f"{inventory} could not be brought to {BASE} on schema {BASE_REVISION} "
        f"(it answers {state.get('version')} on {state.get('schema_revision')})"
    )


def run_scenario(
    scenario: Scenario, inventory: str, url: str, timeout: float, settle: float
) -> dict:
    log(f"{scenario.name}: writer on {url}, then `bluegreen {' '.join(scenario.args)}`")
    with Writer(url, tag=scenario.name) as writer:
        time.sleep(settle)
        run = run_cli([*scenario.args, "-i", inventory], timeout)
        time.sleep(settle)
    tally = check_writes(url, writer.writes)
    result = tally.as_dict() | {
        "exit_code": run.exit_code,
        "expected_exit": scenario.expected_exit,
        "outcome": run.report.get("outcome"),
        "message": run.report.get("message"),
        "command_s": run.wall_s,
        "live_after": health(url).get("version"),
        "schema_after": health(url).get("schema_revision"),
    }
    log(
        f"  exit {run.exit_code} (expected {scenario.expected_exit}) in {run.wall_s:.0f} s; "
        f"acknowledged {tally.acknowledged}, present {tally.present}, lost {tally.lost}, "
        f"503 in maintenance {tally.maintenance_503}, other failures {tally.other_failures}"
    )
    return result


def scenario_target(scenario: Scenario, options: argparse.Namespace) -> tuple[str, str]:
    """The inventory a scenario runs on and the URL of its nginx site."""
    if scenario.engine == "postgresql":
        return options.lab, inventory_url(options.lab)
    if scenario.engine == "sqlite":
        return options.single, inventory_url(options.single)
    inventory = side_inventory(options.container, "containerapp", CONTAINER_SERVICE)
    port = yaml.safe_load(CONTAINER_SERVICE.read_text())["bluegreen_service_public_port"]
    return inventory, inventory_url(inventory, port=int(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", default="lab", help="PostgreSQL lab inventory (default: lab)")
    parser.add_argument("--single", default="lab-single", help="SQLite lab inventory")
    parser.add_argument(
        "--container",
        default="lab-single",
        help="Lab whose host runs the container runtime's service (default: lab-single)",
    )
    parser.add_argument("--only", action="append", help="Run only these scenarios (repeatable)")
    parser.add_argument("--timeout", type=float, default=2400, help="Seconds per command")
    parser.add_argument("--settle", type=float, default=3, help="Seconds of writes before/after")
    options = parser.parse_args(argv)
    wanted = [s for s in SCENARIOS if not options.only or s.name in options.only]
    if not wanted:
        raise SystemExit(f"no scenario named {options.only}; known: {[s.name for s in SCENARIOS]}")
    results: dict[str, dict] = {}
    prepared: set[str] = set()
    try:
        for scenario in wanted:
            inventory, url = scenario_target(scenario, options)
            if inventory not in prepared and scenario.args[0] == "release" and NEW in scenario.args:
                prepare(inventory, url, options.timeout)
            prepared.add(inventory)
            results[scenario.name] = run_scenario(
                scenario, inventory, url, options.timeout, options.settle
            )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"error": str(exc), "scenarios": results}))
        return 1
    print(f"{'scenario':34} {'exit':>4} {'ack':>6} {'present':>8} {'lost':>5} {'503':>5}")
    for name, result in results.items():
        print(
            f"{name:34} {result['exit_code']:>4} {result['acknowledged']:>6} "
            f"{result['present']:>8} {result['lost']:>5} {result['maintenance_503']:>5}"
        )
    bad = [
        name
        for name, result in results.items()
        if result["lost"] or result["exit_code"] != result["expected_exit"]
    ]
    print(json.dumps({"scenarios": results, "lost": sum(r["lost"] for r in results.values())}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
