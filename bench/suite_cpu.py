"""Where the lab suite's CPU goes: per group, per test and per kind of command.

Reads what tests/integration/cpu_use.py wrote during `make integration`
(test-artifacts/cpu-<group>.jsonl): for each test, the CPU of the test process and of
what it ran (bluegreen, ansible-playbook, curl) and of the lab containers; for each
bluegreen command, its process tree's CPU. The suite runs its groups side by side on two
cores, so the sum of these figures, not any test's wall time, is what sets its length.

Last line: one JSON object.

    .venv/bin/python bench/suite_cpu.py [--artifacts test-artifacts] [--top 25]
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path


def read_entries(artifacts: Path) -> list[dict]:
    """Every figure of every group, each with its group's name."""
    entries = []
    for path in sorted(artifacts.glob("cpu-*.jsonl")):
        group = path.stem.removeprefix("cpu-")
        for line in path.read_text().splitlines():
            if line.strip():
                entries.append({"group": group, **json.loads(line)})
    return entries


def inventory_of(command: str) -> str | None:
    """The inventory a command names with -i."""
    words = command.split()
    for flag, value in itertools.pairwise(words):
        if flag in ("-i", "--inventory"):
            return value
    return None


def container_owners(entries: list[dict]) -> dict[str, str]:
    """The group each lab container works for: the one whose commands used its inventory
    most (containers are named bluegreen-<inventory>-<host>). Every group's figures see
    every container, since the groups run at the same time; only the owner's count."""
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        inventory = inventory_of(entry.get("command", ""))
        if inventory:
            used[inventory][entry["group"]] += 1
    names = {name for e in entries for name in e.get("containers_cpu_s", {})}
    owners = {}
    for name in names:
        matches = [inv for inv in used if name.startswith(f"bluegreen-{inv}-")]
        if matches:
            groups = used[max(matches, key=len)]
            owners[name] = max(groups, key=lambda g: groups[g])
    return owners


def own_containers_cpu_s(entry: dict, owners: dict[str, str]) -> float:
    """The CPU a test's own labs used while it ran."""
    return sum(
        cpu
        for name, cpu in entry.get("containers_cpu_s", {}).items()
        if owners.get(name) == entry["group"]
    )


def command_kind(command: str) -> str:
    """'release', 'rollback --with-data', ...: the command and its flags, no values."""
    words = command.split()
    kept = [words[0]] if words else []
    kept += [w for w in words[1:] if w.startswith("--") and w not in ("--json",)]
    return " ".join(kept)


def summary(entries: list[dict], top: int) -> dict:
    tests = [e for e in entries if "command" not in e]
    commands = [e for e in entries if "command" in e]
    owners = container_owners(entries)

    def test_cost(entry: dict) -> float:
        return entry["process_cpu_s"] + own_containers_cpu_s(entry, owners)

    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in tests:
        groups[e["group"]]["wall_s"] += e["wall_s"]
        groups[e["group"]]["process_cpu_s"] += e["process_cpu_s"]
        groups[e["group"]]["containers_cpu_s"] += own_containers_cpu_s(e, owners)
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for c in commands:
        kind = kinds[command_kind(c["command"])]
        kind["count"] += 1
        kind["process_cpu_s"] += c["process_cpu_s"]
        kind["wall_s"] += c["wall_s"]
    return {
        "container_owners": dict(sorted(owners.items())),
        "total_cpu_s": round(sum(test_cost(e) for e in tests), 1),
        "commands": len(commands),
        "commands_cpu_s": round(sum(c["process_cpu_s"] for c in commands), 1),
        "groups": {g: {k: round(v, 1) for k, v in f.items()} for g, f in sorted(groups.items())},
        "tests": [
            {
                "test": e["test"],
                "cpu_s": round(test_cost(e), 1),
                "process_cpu_s": e["process_cpu_s"],
                "containers_cpu_s": round(own_containers_cpu_s(e, owners), 1),
                "wall_s": e["wall_s"],
                "commands": sum(1 for c in commands if c.get("test") == e["test"]),
            }
            for e in sorted(tests, key=test_cost, reverse=True)[:top]
        ],
        "command_kinds": {
            k: {f: round(v, 1) for f, v in figures.items()}
            for k, figures in sorted(kinds.items(), key=lambda kv: -kv[1]["process_cpu_s"])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("test-artifacts"))
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    result = summary(read_entries(options.artifacts), options.top)
    print(f"lab tests: {result['total_cpu_s']} s of CPU; {result['commands']} commands")
    for group, figures in result["groups"].items():
        print(f"  {group:8} {figures}")
    for test in result["tests"]:
        print(
            f"  {test['cpu_s']:7.1f} s cpu ({test['process_cpu_s']:.0f} process, "
            f"{test['containers_cpu_s']:.0f} containers), {test['commands']:2d} commands, "
            f"{test['wall_s']:.0f} s wall  {test['test']}"
        )
    for kind, figures in result["command_kinds"].items():
        print(f"  {kind:50} {figures}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
