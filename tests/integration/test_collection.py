"""A team's own playbook, outside this repository, releases the sample service on the
single-host lab with the bluegreen.release collection installed from its tarball.

Nothing of the tree's Ansible setup helps: the collection is built and installed into a
temporary directory, the playbook lives there, and ANSIBLE_CONFIG names a file of its own
that holds only what reaching the lab takes (the SSH settings the tree's ansible.cfg has).
The single-host lab's inventory is used as it is: it says which hosts, ports and key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import JOURNAL_PATH, ROOT, SINGLE, SINGLE_URL, ensure_live, live, shell

from bluegreen.collection import build

# The single-host lab: nothing here needs two app hosts, and the groups of the multi-host
# lab (lab, lab2) are the suite's longest (test-artifacts/integration-*.log). This costs one
# release between 1.0.0 and 2.0.0 from whichever is live.
pytestmark = [pytest.mark.lab, pytest.mark.lab_group("single"), pytest.mark.usefixtures("lab")]

BIN = Path(sys.executable).parent

# What the repository's ansible.cfg sets that a run against the lab needs, and nothing
# else: the lab's containers get new host keys whenever they are recreated, and
# release.yml builds groups at run time (bluegreen_idle), which are empty until then.
ANSIBLE_CFG = """\
[defaults]
collections_path = {collections}
host_key_checking = False
interpreter_python = /usr/bin/python3
forks = 10
timeout = 20
stdout_callback = ansible.builtin.json
show_custom_stats = True
retry_files_enabled = False

[inventory]
host_pattern_mismatch = ignore

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null \
-o StrictHostKeyChecking=no -o LogLevel=ERROR
"""

# The collection's own release playbook, then a play of the team's own that reads where
# traffic is and what the journal says with the collection's roles and modules by FQCN.
PLAYBOOK = """\
- name: Release the service with the collection's playbook
  ansible.builtin.import_playbook: bluegreen.release.release

- name: Read the live colour and the journal with the collection's roles and modules
  hosts: lb
  gather_facts: false
  roles:
    - role: bluegreen.release.bluegreen_service
  tasks:
    - name: Read the live colour on each load balancer
      ansible.builtin.include_role:
        name: bluegreen.release.bluegreen_preflight
        tasks_from: colours

    - name: Read the release journal
      bluegreen.release.release_journal:
        path: "{{ bluegreen_service_journal }}"
        state: read
        limit: 5
      run_once: true
      register: read_journal

    - name: Report what was read
      ansible.builtin.set_stats:
        data:
          team_live_colour: "{{ hostvars.localhost.bluegreen_preflight_live_colour }}"
          team_journal: "{{ read_journal.releases }}"
        per_host: false
      run_once: true
"""


def other_than(version: str | None) -> str:
    return "1.0.0" if version == "2.0.0" else "2.0.0"


def test_a_playbook_outside_the_tree_releases_the_service_with_the_collection(
    tmp_path: Path,
) -> None:
    if live(SINGLE_URL).status != 200:
        ensure_live("2.0.0", SINGLE)
    before = live(SINGLE_URL)
    version = other_than(before.version)

    collections = tmp_path / "collections"
    tarball = build(tmp_path / "dist")
    workdir = tmp_path / "team"
    workdir.mkdir()
    (workdir / "ansible.cfg").write_text(ANSIBLE_CFG.format(collections=collections))
    (workdir / "release.yml").write_text(textwrap.dedent(PLAYBOOK))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")} | {
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        # The controller's copy of the journal goes here, not to the tree's state/.
        "BLUEGREEN_STATE_DIR": str(tmp_path / "state"),
    }
    installed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", collections],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    completed = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "release.yml",
            "-i",
            str(ROOT / "inventories" / SINGLE),
            "-e",
            json.dumps(
                {
                    "bluegreen_cli": {"app_version": version},
                    # The role's default is beside the playbook; the team's artifacts are here.
                    "bluegreen_service_artifact_dir": str(ROOT / "artifacts"),
                }
            ),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    stats = json.loads(completed.stdout)["global_custom_stats"]
    # The lab is quiet: nothing measured the new colour, so it went live unverified.
    assert stats["bluegreen_outcome"] == "unverified", stats.get("bluegreen_message")
    after = live(SINGLE_URL)
    assert after.version == version
    assert after.colour != before.colour
    assert stats["team_live_colour"] == after.colour

    release_id = stats["bluegreen_release_id"]
    [read_back] = [r for r in stats["team_journal"] if r["release_id"] == release_id]
    assert (read_back["command"], read_back["version"], read_back["outcome"]) == (
        "release",
        version,
        "unverified",
    )
    lines = shell("single1", f"cat {JOURNAL_PATH}", SINGLE)["stdout_lines"]
    steps = [r["step"] for r in map(json.loads, lines) if r["release_id"] == release_id]
    assert {"lock", "deploy", "switch", "release"} <= set(steps), steps
    controller = tmp_path / "state" / "journal" / SINGLE / "sampleapp.jsonl"
    assert release_id in controller.read_text()
