"""What a journal record costs the controller: two module runs (the load balancer's
journal, then the controller's copy as a task on localhost) against one (the action
plugin writes the controller's copy in the controller's own process).

    .venv/bin/python bench/journal_cost.py -i lab-single --records 40 --rounds 3

A release appends about 40 records. Each round runs both ways once, alternating which
goes first, as ``ansible-playbook`` against the inventory's first load balancer with the
strategy the CLI uses (Mitogen's linear); a way's cost is the CPU time (user + system) of
its ansible-playbook process tree and its wall time. Both write to throwaway journals
(on the load balancer under /tmp, on the controller in a temporary directory), the same
records. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _load import PROJECT, BenchError, first_lb, inventory_dir, log, tool

from bluegreen.runner import strategy_envvars

RECORD = """\
    - name: Record {index}
      {task}
      vars:
        step: "step-{index}"
"""

# The way the role wrote a record before: a loop of two module runs.
TWO_TASKS = """release_journal:
        path: "{{{{ item.path }}}}"
        release_id: bench
        step: "{{{{ step }}}}"
        outcome: ok
        evidence: {{n: 1, hosts: [lb1, app1]}}
      delegate_to: "{{{{ item.host }}}}"
      loop:
        - {{host: "{{{{ lb }}}}", path: "{lb_path}"}}
        - {{host: localhost, path: "{controller_path}"}}"""

# The way it writes one now: one module run, the copy written by the action plugin.
ONE_TASK = """release_journal:
        path: "{lb_path}"
        controller_path: "{controller_path}"
        release_id: bench
        step: "{{{{ step }}}}"
        outcome: ok
        evidence: {{n: 1, hosts: [lb1, app1]}}
      delegate_to: "{{{{ lb }}}}\""""


def playbook(way: str, records: int, lb: str, lb_path: str, controller_path: str) -> str:
    template = TWO_TASKS if way == "two_tasks" else ONE_TASK
    task = template.format(lb_path=lb_path, controller_path=controller_path)
    body = "".join(RECORD.format(index=i, task=task) for i in range(records))
    return (
        f"- hosts: localhost\n  gather_facts: false\n  vars:\n    lb: {lb}\n  tasks:\n"
        "    - name: Connect first\n      ansible.builtin.ping:\n"
        f'      delegate_to: "{{{{ lb }}}}"\n'
        f"{body}"
    )


def run_way(way: str, args: argparse.Namespace, lb: str, workdir: Path) -> dict[str, float]:
    book = workdir / f"{way}.yml"
    lb_path = f"/tmp/bluegreen-bench-journal-{way}.jsonl"
    book.write_text(playbook(way, args.records, lb, lb_path, str(workdir / f"{way}.jsonl")))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        **strategy_envvars(os.environ.get("BLUEGREEN_ANSIBLE_STRATEGY")),
    )
    argv = [tool("ansible-playbook"), "-i", str(inventory_dir(args.inventory)), str(book)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"{way}: ansible-playbook failed: {done.stdout[-1500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": cpu, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="lab-single")
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-journal-cost-"))
    ways = ["two_tasks", "one_task"]
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    try:
        lb = first_lb(args.inventory)
        for round_index in range(args.rounds):
            order = ways if round_index % 2 == 0 else list(reversed(ways))
            for way in order:
                runs[way].append(run_way(way, args, lb, workdir))
                log(f"round {round_index + 1} {way}: {runs[way][-1]}")
    except (BenchError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def per_record(way: str, key: str) -> float:
        values = sorted(run[key] for run in runs[way])
        return round(values[len(values) // 2] / args.records * 1000, 1)

    result: dict[str, Any] = {"benchmark": "journal_cost", "inventory": args.inventory,
                              "records": args.records, "rounds": args.rounds}  # fmt: skip
    for way in ways:
        result[f"{way}_cpu_ms_per_record"] = per_record(way, "cpu_s")
        result[f"{way}_wall_ms_per_record"] = per_record(way, "wall_s")
    result["saved_cpu_ms_per_record"] = round(
        result["two_tasks_cpu_ms_per_record"] - result["one_task_cpu_ms_per_record"], 1
    )
    result["saved_wall_ms_per_record"] = round(
        result["two_tasks_wall_ms_per_record"] - result["one_task_wall_ms_per_record"], 1
    )
    result["runs"] = runs
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
