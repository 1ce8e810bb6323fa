"""How long a release of a new version takes without the analysis windows, where the time
goes, and how it compares with a plain symlink-and-restart deploy of the same artifact to
the same host, measured in the same run.

    .venv/bin/python bench/release_time.py -i lab-single
    .venv/bin/python bench/release_time.py -i lab --runs 3
    .venv/bin/python bench/release_time.py --strategies mitogen_linear,linear
    .venv/bin/python bench/release_time.py -i lab --compare-inventory lab-fleet --runs 2

Works on a copy of the inventory (``inventories/scratch-bench-<name>``, git-ignored) with
the golden-signal analysis switched off, so the figures are Ansible's and the service's,
not the analysis windows'. Each run:

1. releases ``--baseline`` (1.0.0), so that it is live and the other colour idle;
2. removes ``--version``'s release directory from the app hosts, so that the release
   installs it (a new version, not one installed by an earlier run);
3. times ``bluegreen release --version`` (``release_s``) and reads its journal records
   (seconds per step) and its job events (seconds per play, costliest tasks);
4. times the plain deploy (``plain_s``) on the idle colour's first app host, over ssh with
   no Ansible: copy the artifact, unpack it, create a virtualenv, install offline from its
   wheelhouse, point the idle colour's link at it, restart the colour's unit, wait for its health
   check. This is what ansistrano and a hand-written script do, without a lock, a plan,
   a snapshot, a journal or a switch.

Ansible's own overhead is estimated from the same run: the cost of a task that does
nothing is measured for three kinds (a module on a remote host, a module on the
controller, an action that runs in the controller's process), each from a playbook of
``--floor-tasks`` such tasks against one of none; ``overhead_s`` is each task of the
release counted at its kind's cost. With ``--strategies`` naming several Ansible
strategies (``BLUEGREEN_ANSIBLE_STRATEGY``), each run releases once under each, in turn,
so the machine's noise falls on all of them alike; the figures of the first lead the
JSON, the others are under ``by_strategy``. With ``--compare-inventory`` (a fleet, say
3 + 3 app hosts against ``-i``'s 1 + 1), each run also releases that inventory, right
after, under the first strategy: its figures are under ``compared`` and ``fleet_ratio``
is its ``release_s`` over the first inventory's (target 1.5). The last line is one JSON
object; the exit code is 1 when a command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _load import (
    PROJECT,
    BenchError,
    CommandRun,
    inventory_dir,
    log,
    print_profile,
    read_journal,
    run_cli,
    run_module_on_each,
    tool,
)
from rich.console import Console
from rich.table import Table

from bluegreen.runner import DEFAULT_STRATEGY, STRATEGY_VARIABLE, strategy_envvars

TARGET_S = 20.0
TARGET_RATIO = 1.5
# Actions the strategy or an action plugin runs in the controller's process: their cost
# is Ansible's alone, whatever the host.
IN_PROCESS = {
    "ansible.builtin.set_fact",
    "ansible.builtin.assert",
    "ansible.builtin.fail",
    "ansible.builtin.debug",
    "ansible.builtin.set_stats",
    "ansible.builtin.group_by",
    "ansible.builtin.add_host",
    "ansible.builtin.meta",
    "ansible.builtin.include_role",
    "ansible.builtin.include_tasks",
    "ansible.builtin.validate_argument_spec",
    "validate_argument_spec",
    "set_fact",
    "assert",
    "fail",
    "debug",
    "meta",
    "include_role",
    "include_tasks",
}
# The figures by_strategy compares.
COMPARED = ("release_s", "plain_s", "ratio", "overhead_s", "overhead_share", "task_floor_s")
ANALYSIS_OFF = {
    "bluegreen_analysis_enabled": False,
    "bluegreen_analysis_pre_switch_enabled": False,
}


@dataclass
class Run:
    release: CommandRun
    strategy: str
    plain_s: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    overhead_s: float = 0.0

    @property
    def release_s(self) -> float:
        return self.release.ended - self.release.started


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default="lab-single", help="inventory name or path")
    parser.add_argument("--version", default="2.0.0", help="version released in each run")
    parser.add_argument("--baseline", default="1.0.0", help="version live before each run")
    parser.add_argument("--runs", type=int, default=3, help="releases to time")
    parser.add_argument("--floor-tasks", type=int, default=20, help="tasks per floor playbook")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument("--top", type=int, default=12, help="costliest tasks shown")
    parser.add_argument(
        "--compare-inventory",
        help="a second inventory (e.g. lab-fleet) released in every run after the first, "
        "under the first strategy: fleet_ratio is its release_s over the first's",
    )
    parser.add_argument(
        "--strategies",
        default=os.environ.get(STRATEGY_VARIABLE) or DEFAULT_STRATEGY,
        help="comma-separated Ansible strategies compared side by side (the CLI's by default)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"release_time: {exc}", file=sys.stderr)
        return 2


@dataclass
class Setup:
    """One inventory under one strategy, released in every run."""

    label: str
    inventory: str
    hosts: list[dict[str, Any]]
    strategy: str
    floors: dict[str, float] = field(default_factory=dict)


def setups_of(args: argparse.Namespace) -> list[Setup]:
    """The main inventory under each strategy, then the compared inventory (if any) under
    the first; each with its task floors measured."""
    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    inventory = bench_inventory(args.inventory)
    setups = [Setup(name, inventory, app_hosts(inventory), name) for name in strategies]
    if args.compare_inventory:
        other = bench_inventory(args.compare_inventory)
        label = f"{args.compare_inventory} ({strategies[0]})"
        setups.append(Setup(label, other, app_hosts(other), strategies[0]))
    for setup in setups:
        setup.floors = task_floors(
            setup.inventory, setup.hosts[0]["name"], args.floor_tasks, setup.strategy
        )
        log(
            f"{setup.label}: one task that does nothing costs "
            + ", ".join(f"{kind} {seconds:.3f} s" for kind, seconds in setup.floors.items())
        )
    return setups


def run(args: argparse.Namespace) -> int:
    setups = setups_of(args)
    runs: dict[str, list[Run]] = {setup.label: [] for setup in setups}
    for number in range(1, args.runs + 1):
        for setup in setups:
            current = release_once(args, setup.inventory, setup.strategy)
            if current.release.exit_code == 0:
                colour = idle_colour(current.release)
                current.plain_s = plain_deploy(host_of(setup.hosts, colour), args.version, colour)
            add_steps(current, setup.inventory)
            add_overhead(current, setup.floors)
            runs[setup.label].append(current)
            log(
                f"{number}/{args.runs} {setup.label}: release {args.version} exit "
                f"{current.release.exit_code} in {current.release_s:.1f} s; plain deploy "
                f"{_s(current.plain_s)} s; Ansible overhead about {current.overhead_s:.1f} s"
            )
    for setup in setups:
        print_runs(setup.label, runs[setup.label])
    first = setups[0].label
    print_profile([r.release for r in runs[first]], args.top)
    summaries = {s.label: summarize(args, runs[s.label], s.floors) for s in setups}
    summary = summaries[first] | {"strategy": first}
    strategies = [s for s in setups if s.inventory == setups[0].inventory]
    if len(strategies) > 1:
        summary["by_strategy"] = {
            s.label: {key: summaries[s.label][key] for key in COMPARED} for s in strategies
        }
    if args.compare_inventory:
        compared = summaries[setups[-1].label]
        summary["compared"] = {
            "inventory": args.compare_inventory,
            **{key: compared[key] for key in (*COMPARED, "per_run_release_s")},
        }
        summary["target_fleet_ratio"] = TARGET_RATIO
        summary["fleet_ratio"] = _round(
            compared["release_s"] / summary["release_s"]
            if compared["release_s"] and summary["release_s"]
            else None
        )
    print(json.dumps(summary))
    failed = sum(s["failed_runs"] for s in summaries.values())
    return 0 if failed == 0 else 1


def release_once(args: argparse.Namespace, inventory: str, strategy: str) -> Run:
    """Release the baseline, remove the version's release directory, release the version:
    both under ``strategy``."""
    env = {STRATEGY_VARIABLE: strategy}
    baseline = run_cli(
        ["release", "--version", args.baseline, "-i", inventory], args.timeout, env=env
    )
    if baseline.exit_code != 0:
        raise BenchError(f"releasing {args.baseline} failed: {baseline.report.get('message')}")
    remove_release(inventory, args.version)
    release = run_cli(
        ["release", "--version", args.version, "-i", inventory], args.timeout, env=env
    )
    return Run(release, strategy)


def bench_inventory(name: str) -> str:
    """A copy of the inventory with the analysis off: ``inventories/scratch-bench-<name>``."""
    source = inventory_dir(name)
    copy = PROJECT / "inventories" / f"scratch-bench-{source.name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    group_vars = copy / "group_vars" / "all"
    if (copy / "group_vars" / "all.yml").exists():
        raise BenchError(f"{source}/group_vars/all.yml: use a group_vars/all/ folder")
    group_vars.mkdir(parents=True, exist_ok=True)
    (group_vars / "zz-bench-release-time.yml").write_text(
        "# bench/release_time.py: the release without its analysis windows\n"
        + yaml.safe_dump(ANALYSIS_OFF),
        encoding="utf-8",
    )
    # The lab's key is found relative to the inventory (state/lab/ssh).
    return str(copy)


def host_of(hosts: list[dict[str, Any]], colour: str) -> dict[str, Any]:
    """The first app host that runs ``colour`` (a host naming no colours runs both)."""
    for host in hosts:
        if colour in host["vars"].get("bluegreen_service_colours", ["blue", "green"]):
            return host
    raise BenchError(f"no app host runs the {colour} colour")


def app_hosts(inventory: str) -> list[dict[str, Any]]:
    """Name, ssh address, port, user, key and the service's variables of each app host."""
    listing = subprocess.run(
        [tool("ansible-inventory"), "-i", inventory, "--list"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    tree = json.loads(listing.stdout)
    names = tree.get("app", {}).get("hosts") or []
    if not names:
        raise BenchError(f"{inventory} has no host in group app")
    return [host_entry(name, tree["_meta"]["hostvars"][name], inventory) for name in names]


def host_entry(name: str, hostvars: dict[str, Any], inventory: str) -> dict[str, Any]:
    key = str(hostvars["ansible_ssh_private_key_file"]).replace(
        "{{ inventory_dir }}", str(Path(inventory).resolve())
    )
    return {
        "name": name,
        "address": hostvars.get("ansible_host", name),
        "port": int(hostvars.get("ansible_port", 22)),
        "user": hostvars.get("ansible_user", "root"),
        "key": str(Path(key).resolve()),
        "vars": hostvars,
    }


def task_floors(inventory: str, host: str, count: int, strategy: str) -> dict[str, float]:
    """Seconds one task that does nothing costs under ``strategy``, per kind: each kind's
    playbook with ``count`` tasks, less the same playbook with none, over ``count``."""
    env = os.environ | strategy_envvars(strategy)
    kinds = {
        "remote module": {"hosts": host, "task": {"ansible.builtin.ping": {}}},
        "controller module": {"hosts": "localhost", "task": {"ansible.builtin.ping": {}}},
        "in-process action": {"hosts": host, "task": {"ansible.builtin.set_fact": {"x": 1}}},
    }
    floors = {}
    with tempfile.TemporaryDirectory(prefix="bluegreen-floor-") as folder:
        for kind, spec in kinds.items():
            timings = []
            for tasks in (0, count):
                book = Path(folder) / f"{len(floors)}-{tasks}.yml"
                play = {"name": kind, "hosts": spec["hosts"], "gather_facts": False}
                play["tasks"] = [{"name": f"noop {n}"} | spec["task"] for n in range(tasks)]
                play["tasks"].insert(0, {"name": "connect", "ansible.builtin.ping": {}})
                book.write_text(yaml.safe_dump([play]), encoding="utf-8")
                began = time.monotonic()
                done = subprocess.run(
                    [tool("ansible-playbook"), "-i", inventory, str(book)],
                    cwd=PROJECT,
                    capture_output=True,
                    text=True,
                    check=False,
                    env=env,
                )
                if done.returncode != 0:
                    raise BenchError(f"the {kind} floor playbook failed: {done.stdout[-400:]}")
                timings.append(time.monotonic() - began)
            floors[kind] = max(timings[1] - timings[0], 0.0) / count
    return floors


def remove_release(inventory: str, version: str) -> None:
    results = run_module_on_each(
        inventory,
        "app",
        "ansible.builtin.file",
        {"path": f"/opt/sampleapp/releases/{version}", "state": "absent"},
    )
    failed = {host: r.get("msg") for host, r in results.items() if r.get("failed")}
    if failed:
        raise BenchError(f"could not remove release {version}: {failed}")


def idle_colour(release: CommandRun) -> str:
    """The colour the release left idle (the baseline's)."""
    live = str(release.stats.get("bluegreen_active_colour") or "")
    if live not in ("blue", "green"):
        raise BenchError(f"the release did not say which colour is live: {release.report}")
    return "green" if live == "blue" else "blue"


def plain_deploy(host: dict[str, Any], version: str, colour: str) -> float:
    """Seconds for scp, unpack, virtualenv, offline pip install, link, restart and the
    first 200 from the health check, on the host's idle colour; no Ansible."""
    service = host["vars"].get("bluegreen_service_name", "sampleapp")
    port = int(service_ports(host["vars"])[colour])
    artifact = PROJECT / "artifacts" / f"{service}-{version}.tar.gz"
    manifest_with = " ".join(shlex.quote(w) for w in artifact_with(artifact))
    ssh = [
        "-i",
        host["key"],
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ]
    ssh += ["-o", "LogLevel=ERROR"]
    target = f"{host['user']}@{host['address']}"
    release_dir = f"/opt/{service}/releases-plain/{version}"
    script = f"""
set -eu
rm -rf {release_dir} && mkdir -p {release_dir}
tar -xzf /tmp/bench-plain.tar.gz -C {release_dir} --strip-components=1
python3 -m venv {release_dir}/venv
{release_dir}/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \\
  --find-links {release_dir}/wheelhouse {service}=={version} {manifest_with}
ln -sfn {release_dir} /opt/{service}/colours/{colour}
systemctl restart {service}@{colour}.service
for i in $(seq 1200); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \\
    http://127.0.0.1:{port}/health 2>/dev/null && exit 0
  sleep 0.05
done
exit 1
"""
    began = time.monotonic()
    subprocess.run(
        [
            "scp",
            "-q",
            "-P",
            str(host["port"]),
            *ssh,
            str(artifact),
            f"{target}:/tmp/bench-plain.tar.gz",
        ],
        check=True,
    )
    done = subprocess.run(
        ["ssh", "-p", str(host["port"]), *ssh, target, "bash -s"],
        input=script,
        text=True,
        capture_output=True,
        check=False,
    )
    elapsed = time.monotonic() - began
    if done.returncode != 0:
        raise BenchError(f"the plain deploy failed: {done.stderr[-400:]}")
    return elapsed


def service_ports(hostvars: dict[str, Any]) -> dict[str, int]:
    """The colours' ports: the inventory's, else bluegreen_service's defaults."""
    defaults = PROJECT / "roles" / "bluegreen_service" / "defaults" / "main.yml"
    ports = yaml.safe_load(defaults.read_text(encoding="utf-8"))["bluegreen_service_ports"]
    return dict(ports) | dict(hostvars.get("bluegreen_service_ports") or {})


def artifact_with(artifact: Path) -> list[str]:
    """What the artifact was built ``with`` (its manifest), installed beside the service."""
    with tarfile.open(artifact) as tar:
        for member in tar.getmembers():
            if member.name.endswith("/bluegreen-artifact.json"):
                handle = tar.extractfile(member)
                if handle is not None:
                    return list(json.load(handle).get("with", []))
    return []


def add_steps(current: Run, inventory: str) -> None:
    """Seconds per journaled step of the run's release."""
    release_id = current.release.release_id
    for record in read_journal(inventory):
        if record.get("release_id") != release_id or record.get("duration_s") is None:
            continue
        step = str(record.get("step"))
        current.steps[step] = current.steps.get(step, 0.0) + float(record["duration_s"])


def add_overhead(current: Run, floors: dict[str, float]) -> None:
    """Each task result of the release at the cost of its kind's task that does nothing."""
    run_dir = current.release.report.get("run_dir")
    if not run_dir:
        return
    for path in (Path(run_dir) / "job_events").glob("*.json"):
        event = json.loads(path.read_text(encoding="utf-8"))
        if event.get("event") not in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            continue
        data = event.get("event_data", {})
        action = str(data.get("task_action", ""))
        delegated = (data.get("res") or {}).get("_ansible_delegated_vars", {})
        on_controller = data.get("host") == "localhost" or (
            delegated.get("ansible_host") in ("localhost", "127.0.0.1")
            and delegated.get("ansible_connection") == "local"
        )
        if action in IN_PROCESS or event["event"] == "runner_on_skipped":
            kind = "in-process action"
        elif on_controller:
            kind = "controller module"
        else:
            kind = "remote module"
        current.tasks[kind] = current.tasks.get(kind, 0) + 1
        current.overhead_s += floors[kind]


def print_runs(strategy: str, runs: list[Run]) -> None:
    console = Console(width=150, highlight=False)
    table = Table(
        title=f"Releases of a new version, analysis off, strategy {strategy} (s)",
        title_justify="left",
    )
    for column in ("#", "exit", "release", "plain deploy", "ratio", "overhead", "tasks"):
        table.add_column(column, justify="right")
    for number, current in enumerate(runs, 1):
        ratio = current.release_s / current.plain_s if current.plain_s else None
        table.add_row(
            str(number),
            str(current.release.exit_code),
            f"{current.release_s:.1f}",
            _s(current.plain_s),
            _s(ratio),
            f"{current.overhead_s:.1f}",
            " / ".join(f"{kind} {n}" for kind, n in sorted(current.tasks.items())),
        )
    console.print(table)
    steps: dict[str, list[float]] = {}
    for current in runs:
        for step, seconds in current.steps.items():
            steps.setdefault(step, []).append(seconds)
    table = Table(title=f"Journaled steps, {strategy} (median, s)", title_justify="left")
    table.add_column("step")
    table.add_column("s", justify="right")
    for step, values in steps.items():
        table.add_row(step, f"{statistics.median(values):.2f}")
    console.print(table)


def summarize(args: argparse.Namespace, runs: list[Run], floors: dict[str, float]) -> dict:
    done = [r for r in runs if r.release.exit_code == 0 and r.plain_s]
    release_s = statistics.median(r.release_s for r in done) if done else None
    plain_s = statistics.median(r.plain_s for r in done if r.plain_s) if done else None
    overhead_s = statistics.median(r.overhead_s for r in done) if done else None
    return {
        "benchmark": "release_time",
        "inventory": args.inventory,
        "version": args.version,
        "runs": len(runs),
        "failed_runs": len(runs) - len(done),
        "release_s": _round(release_s),
        "plain_s": _round(plain_s),
        "ratio": _round(release_s / plain_s if release_s and plain_s else None),
        "overhead_s": _round(overhead_s),
        "overhead_share": _round(overhead_s / release_s if overhead_s and release_s else None),
        "task_floor_s": {kind: round(seconds, 4) for kind, seconds in floors.items()},
        "tasks": done[0].tasks if done else {},
        "per_run_release_s": [round(r.release_s, 2) for r in runs],
        "per_run_plain_s": [_round(r.plain_s) for r in runs],
        "target_s": TARGET_S,
        "target_ratio": TARGET_RATIO,
        "measured_at": datetime.now().isoformat(timespec="seconds"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
