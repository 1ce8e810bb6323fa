"""release_journal's action plugin: the controller's copy of the journal gets the very line
the host wrote, in the controller's process, and keeps the record when the host fails.

Run through ansible-playbook with the tree's ansible.cfg (the real plugin, the real module
on localhost as the "host"), as the release roles run it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55"

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Append one record
      release_journal:
        path: "{host_path}"
        controller_path: "{controller_path}"
        release_id: r-1
        step: "{step}"
        outcome: ok
        message: "password {secret} used"
        evidence: {{ok: true, url: "postgresql://app:{secret}@db/app"}}
        redact: ["{secret}"]
        mode: "0600"
      register: appended
      ignore_unreachable: true
    - name: Show it
      ansible.builtin.debug:
        var: appended
"""


def run_playbook(tmp_path: Path, inventory: str, step: str, *extra: str) -> dict:
    host_path, controller_path = tmp_path / "host" / "journal.jsonl", tmp_path / "controller.jsonl"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        PLAYBOOK.format(
            host_path=host_path, controller_path=controller_path, step=step, secret=SECRET
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_TIMEOUT="3",
    )
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, *extra, str(playbook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert SECRET not in run.stdout + run.stderr
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    return next(iter(tasks[0]["hosts"].values()))


def test_the_controller_copy_is_the_line_the_host_wrote(tmp_path: Path) -> None:
    result = run_playbook(
        tmp_path, "localhost,", "switch", "-c", "local",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
    )  # fmt: skip
    assert not result.get("failed"), result
    host_lines = (tmp_path / "host" / "journal.jsonl").read_text().splitlines()
    controller_lines = (tmp_path / "controller.jsonl").read_text().splitlines()
    assert controller_lines == host_lines and len(host_lines) == 1
    record = json.loads(controller_lines[0])
    assert record["step"] == "switch" and SECRET not in controller_lines[0]
    assert record["message"] == "password ******** used"
    assert result["controller_copy"] == {
        "path": str(tmp_path / "controller.jsonl"),
        "line_number": 1,
    }
    assert oct((tmp_path / "controller.jsonl").stat().st_mode & 0o777) == "0o600"

    again = run_playbook(
        tmp_path, "localhost,", "unlock", "-c", "local",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
    )  # fmt: skip
    assert again["controller_copy"]["line_number"] == 2
    assert (tmp_path / "controller.jsonl").read_text() == (
        tmp_path / "host" / "journal.jsonl"
    ).read_text()


def test_a_host_that_cannot_be_reached_leaves_the_record_in_the_controller_copy(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the ssh connection is refused at once.
    result = run_playbook(
        tmp_path, "unreachable-lb,", "lock", "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9",
        "-c", "ssh",
    )  # fmt: skip
    assert result.get("unreachable"), result
    assert not (tmp_path / "host" / "journal.jsonl").exists()
    lines = (tmp_path / "controller.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["release_id"], record["step"], record["outcome"]) == ("r-1", "lock", "ok")
    assert SECRET not in lines[0]


def test_a_record_refused_by_the_module_is_not_written_anywhere(tmp_path: Path) -> None:
    result = run_playbook(
        tmp_path, "localhost,", "", "-c", "local",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
    )  # fmt: skip
    assert result.get("failed") and "step is empty" in result["msg"], result
    assert not (tmp_path / "controller.jsonl").exists()
