"""What each lab test and each bluegreen command cost in CPU, written beside the logs.

The suite runs its lab groups side by side on two cores, so its wall time is set by the
CPU all of them use, not by any test's waits. To cut it where the cost is, every test
appends a line to test-artifacts/cpu-<group>.jsonl: its wall time, the CPU of the test
process and everything it ran (bluegreen, ansible-playbook, curl), and the CPU each lab
container used meanwhile (a group's tests run one at a time on their own labs, so the
containers of its labs are its own). bench/suite_cpu.py sums the files.

Nothing here asserts a time: these are figures for people.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CGROUP_FILES = (
    "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",  # cgroup v1, nanoseconds
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",  # cgroup v2, usage_usec
)


def process_cpu_s() -> float:
    """CPU seconds of this process and of every child it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _container_cpu_s(container_id: str) -> float | None:
    for pattern in CGROUP_FILES:
        path = Path(pattern.format(id=container_id))
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpuacct.usage":
            return int(text) / 1e9
        fields = dict(line.split() for line in text.splitlines() if line)
        return int(fields["usage_usec"]) / 1e6
    return None


def containers_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each running lab container, by container name."""
    try:
        listing = subprocess.run(
            ["docker", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    used: dict[str, float] = {}
    for line in listing.splitlines():
        container_id, _, name = line.partition(" ")
        cpu = _container_cpu_s(container_id)
        if cpu is not None and name.startswith("bluegreen-"):
            used[name] = cpu
    return used


class Meter:
    """CPU from `start` to `stop`: the process tree's and each container's."""

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.cpu = process_cpu_s()
        self.containers = containers_cpu_s()

    def stop(self) -> dict:
        after = containers_cpu_s()
        used = {
            name: round(cpu - self.containers.get(name, 0.0), 2)
            for name, cpu in after.items()
            if cpu - self.containers.get(name, 0.0) >= 0.05
        }
        return {
            "wall_s": round(time.monotonic() - self.wall, 2),
            "process_cpu_s": round(process_cpu_s() - self.cpu, 2),
            "containers_cpu_s": used,
        }


def record(group: str, entry: dict) -> None:
    """Append one figure to test-artifacts/cpu-<group>.jsonl."""
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / f"cpu-{group}.jsonl").open("a") as out:
        out.write(json.dumps(entry, sort_keys=True) + "\n")


def group_of_this_run() -> str:
    """The -m group_<name> this pytest runs, for the file name; 'all' without one."""
    return os.environ.get("BLUEGREEN_TEST_GROUP", "all")
