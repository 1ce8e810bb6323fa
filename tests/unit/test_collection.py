"""The bluegreen.release collection: built from the tree, installed with ansible-galaxy, and
used from a playbook outside the repository with no ansible.cfg of ours.

The collection is built and installed once for the module. Every ansible command here runs
in a temporary directory with ANSIBLE_CONFIG naming an empty file, so neither the tree's
library/, module_utils/ and roles/ paths nor anything else of ansible.cfg can help.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bluegreen.collection import (
    COLLECTION,
    MODULE_UTILS_PACKAGE,
    ROOT,
    build,
    our_module_utils,
    project_version,
    qualify_filters,
    rewrite_imports,
)

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Installed:
    tarball: Path
    path: Path  # ansible_collections/bluegreen/release
    workdir: Path  # outside the repository: playbooks, inventory, an empty ansible.cfg
    env: dict[str, str]

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / command[0]), *command[1:]],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def playbook(self, name: str, text: str) -> str:
        (self.workdir / name).write_text(textwrap.dedent(text))
        return name


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("collection")
    workdir = tmp / "user"
    workdir.mkdir()
    (workdir / "ansible.cfg").touch()
    # localhost stands in for the load balancer, so roles that journal there run here.
    (workdir / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "lb": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")} | {
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(tmp / "collections"),
        "ANSIBLE_INVENTORY": str(workdir / "inventory.yml"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
    }
    tarball = build(tmp / "dist")
    installer = Installed(tarball, tmp / "collections" / "ansible_collections", workdir, env)
    done = installer.run(
        "ansible-galaxy", "collection", "install", str(tarball), "-p", str(tmp / "collections")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Installed(tarball, installer.path / "bluegreen" / "release", workdir, env)


def test_imports_of_our_module_utils_point_into_the_collection() -> None:
    source = textwrap.dedent(
        """\
        from ansible.module_utils.basic import AnsibleModule
        from ansible.module_utils.urls import open_url
        from ansible.module_utils.nginx_color import (
            render_upstream,
        )
        from ansible.module_utils.nginx_colour_extra import thing
        import ansible.module_utils.release_lock as release_lock
        from ansible.module_utils import release_journal
        from ansible.module_utils import basic, release_journal
        """
    )

    rewritten = rewrite_imports(source, {"nginx_color", "release_lock", "release_journal"})

    assert rewritten.splitlines() == [
        "from ansible.module_utils.basic import AnsibleModule",
        "from ansible.module_utils.urls import open_url",
        f"from {MODULE_UTILS_PACKAGE}.nginx_color import (",
        "    render_upstream,",
        ")",
        "from ansible.module_utils.nginx_colour_extra import thing",
        f"import {MODULE_UTILS_PACKAGE}.release_lock as release_lock",
        f"from {MODULE_UTILS_PACKAGE} import release_journal",
        # basic is ansible-core's: a line naming both is left alone rather than split.
        "from ansible.module_utils import basic, release_journal",
    ]


def test_the_tarball_holds_every_module_role_and_playbook_of_the_tree(installed: Installed) -> None:
    assert installed.tarball.name == f"bluegreen-release-{project_version()}.tar.gz"
    with tarfile.open(installed.tarball) as tar:
        names = set(tar.getnames())
        runtime = yaml.safe_load(tar.extractfile("meta/runtime.yml").read())  # type: ignore[union-attr]

    modules = {f"plugins/modules/{p.name}" for p in (ROOT / "library").glob("*.py")}
    roles = {f"roles/{p.name}" for p in (ROOT / "roles").iterdir() if p.is_dir()}
    playbooks = {f"playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yml")}
    assert modules and roles and playbooks
    assert modules | roles | playbooks <= names
    assert "roles/bluegreen_lock/templates/lock_message.j2" in names
    assert "plugins/filter/release_flow.py" in names
    assert {f"plugins/module_utils/{name}.py" for name in our_module_utils()} <= names
    assert runtime["requires_ansible"] == ">=2.19,<2.20"
    assert not any("__pycache__" in name for name in names)


def test_no_module_imports_our_module_utils_by_their_tree_name(installed: Installed) -> None:
    ours = our_module_utils()
    plugins = installed.path / "plugins"
    for path in plugins.rglob("*.py"):
        text = path.read_text()
        for name in ours:
            assert f"ansible.module_utils.{name} " not in text, (path, name)
            assert f"ansible.module_utils.{name}\n" not in text, (path, name)


def test_ansible_doc_renders_every_module_by_its_fqcn(installed: Installed) -> None:
    names = sorted(f"{COLLECTION}.{p.stem}" for p in (ROOT / "library").glob("*.py"))

    listed = installed.run("ansible-doc", "-t", "module", "--json", *names)
    rendered = installed.run("ansible-doc", "-t", "module", *names)

    assert listed.returncode == 0, listed.stderr
    docs = json.loads(listed.stdout)
    assert sorted(docs) == names, listed.stderr
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"]["options"], name
        assert doc["return"], name
    assert rendered.returncode == 0, rendered.stderr
    for name in names:
        assert f"> MODULE {name}" in rendered.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")


def test_a_pure_module_runs_by_its_fqcn_from_a_playbook_outside_the_tree(
    installed: Installed,
) -> None:
    book = installed.playbook(
        "outcome.yml",
        """\
        - name: Decide an outcome with the collection's module
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Decide the outcome of a switched release
              bluegreen.release.release_outcome:
                command: release
                switched: true
                live_colour: blue
                idle_colour: green
                version: 2.0.0
                live_version: 1.0.0
                analysis: {decision: {action: pass, verdict: ok, reason: 2 measurements ok}}
              register: decided

            - name: Report it
              ansible.builtin.set_stats:
                data: {outcome: "{{ decided.outcome }}", message: "{{ decided.message }}"}
                per_host: false
        """,
    )

    stats = custom_stats(installed, book)

    assert stats["outcome"] == "released"
    assert stats["message"] == (
        "2.0.0 is live on green; blue stays warm for a rollback; "
        "post-switch analysis passed (ok): 2 measurements ok"
    )


def test_a_short_module_name_in_a_playbook_of_ones_own_is_not_found(installed: Installed) -> None:
    # Why a user's playbook names our modules by FQCN (or lists the collection in
    # `collections:`): outside the collection nothing searches it.
    book = installed.playbook(
        "short.yml",
        """\
        - name: Use a module by its short name
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Decide an outcome
              release_outcome:
                command: release
        """,
    )

    completed = installed.run("ansible-playbook", book)

    assert completed.returncode != 0
    assert "couldn't resolve module/action 'release_outcome'" in completed.stdout + completed.stderr


def test_a_collection_role_by_fqcn_finds_its_modules_and_roles_by_short_name(
    installed: Installed, tmp_path: Path
) -> None:
    # bluegreen_policy calls release_policy, depends on bluegreen_service and includes
    # bluegreen_journal, which calls release_journal: all by their short names.
    book = installed.playbook(
        "policy.yml",
        f"""\
        - name: Judge the release policy with the collection's role
          hosts: lb
          gather_facts: false
          vars:
            bluegreen_service_journal: {tmp_path}/lb/journal.jsonl
            bluegreen_service_controller_journal: {tmp_path}/controller/journal.jsonl
          tasks:
            - name: Apply the release windows and approval policy
              ansible.builtin.include_role:
                name: bluegreen.release.bluegreen_policy
              vars:
                bluegreen_policy_release_id: r-collection
        """,
    )

    completed = installed.run("ansible-playbook", book)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    for journal in (tmp_path / "lb" / "journal.jsonl", tmp_path / "controller" / "journal.jsonl"):
        [record] = [json.loads(line) for line in journal.read_text().splitlines()]
        assert (record["release_id"], record["step"], record["outcome"]) == (
            "r-collection",
            "policy",
            "ok",
        )
        assert record["message"] == "no release windows are configured"


def test_a_collection_playbook_imported_by_fqcn_runs_its_short_names(
    installed: Installed, tmp_path: Path
) -> None:
    # lock.yml calls release_lock and the bluegreen_service role by short name, and reads
    # templates/lock_message.j2 beside it.
    book = installed.playbook(
        "lock.yml",
        """\
        - name: Show the release lock
          ansible.builtin.import_playbook: bluegreen.release.lock
        """,
    )

    stats = custom_stats(installed, book, "-e", f"bluegreen_service_state_dir={tmp_path}/lb")

    assert stats["bluegreen_outcome"] == "free"
    assert stats["bluegreen_message"] == "free: no release or rollback is running"


def test_every_collection_playbook_passes_a_syntax_check_by_fqcn(installed: Installed) -> None:
    books = [f"{COLLECTION}.{p.stem}" for p in sorted((ROOT / "playbooks").glob("*.yml"))]
    user = installed.playbook(
        "release.yml",
        """\
        - name: Release with the collection's playbook
          ansible.builtin.import_playbook: bluegreen.release.release
        """,
    )

    completed = installed.run("ansible-playbook", "--syntax-check", *books, user)

    assert completed.returncode == 0, completed.stdout + completed.stderr


def custom_stats(installed: Installed, book: str, *args: str) -> dict:
    """The run's set_stats data (per_host: false), from the json callback."""
    completed = subprocess.run(
        [str(BIN / "ansible-playbook"), book, *args],
        cwd=installed.workdir,
        # The json callback reports set_stats only when asked to show them.
        env=installed.env
        | {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_SHOW_CUSTOM_STATS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout)["global_custom_stats"]


def test_a_collection_role_asks_the_state_machine_through_its_own_filter(
    installed: Installed,
) -> None:
    # bluegreen_release's step entry point asks bluegreen_step_gate by its short name:
    # after a failed step, the lock step ends its play and the next play still runs.
    book = installed.playbook(
        "gate.yml",
        """\
        - name: Record a failed preflight
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Fail the preflight as data
              ansible.builtin.set_fact:
                bluegreen_release_id: r-gate
                bluegreen_release_command: release
                bluegreen_release_failure: {step: preflight, msg: refused}

        - name: Take the lock, unless a step failed
          hosts: lb
          gather_facts: false
          tasks:
            - name: Ask the state machine
              ansible.builtin.include_role:
                name: bluegreen.release.bluegreen_release
                tasks_from: step
              vars:
                bluegreen_release_step: lock

            - name: Never reached
              ansible.builtin.fail:
                msg: the lock step ran after a failed preflight

        - name: Go on to the last play
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Say so
              ansible.builtin.debug:
                msg: >-
                  gate: {{ (hostvars.localhost
                           | bluegreen.release.bluegreen_step_gate('lock', 'release')).reason }}
        """,
    )

    completed = installed.run("ansible-playbook", book)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "gate: an earlier step failed" in completed.stdout


def test_the_built_copy_names_our_filters_by_fqcn_and_leaves_others() -> None:
    text = "{{ record\n   | bluegreen_step_decision(step) }} {{ x | default(1) | bluegreen_other }}"

    assert qualify_filters(text, {"bluegreen_step_decision"}) == (
        "{{ record\n   | bluegreen.release.bluegreen_step_decision(step) }}"
        " {{ x | default(1) | bluegreen_other }}"
    )
