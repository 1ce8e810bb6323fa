"""The ansible-runner wrapper: finding the project and inventory, reading what a run
reported, and one real run of a tiny local playbook."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bluegreen.cli import verdict
from bluegreen.errors import ExitCode, InputError
from bluegreen.project import PROJECT_DIR_ENV, project_root
from bluegreen.runner import (
    EventCollector,
    Failure,
    namespaced_extravars,
    new_run_dir,
    prune_runs,
    resolve_inventory,
    result_message,
    run_playbook,
    strategy_envvars,
)


def make_project(root: Path) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "inventories" / "lab").mkdir(parents=True)
    (root / "inventories" / "lab-single").mkdir(parents=True)
    (root / "ansible.cfg").write_text("[defaults]\n")
    return root


# --- project discovery -------------------------------------------------------------


def test_project_is_found_upwards_from_a_nested_directory(tmp_path: Path) -> None:
    project = make_project(tmp_path / "ops")
    nested = project / "roles" / "switch" / "tasks"
    nested.mkdir(parents=True)

    assert project_root(cwd=nested, environ={}) == project.resolve()


def test_explicit_project_dir_wins_over_the_one_around_the_cwd(tmp_path: Path) -> None:
    here = make_project(tmp_path / "here")
    there = make_project(tmp_path / "there")

    assert project_root(explicit=there, cwd=here, environ={}) == there.resolve()


def test_environment_names_the_project_when_the_cwd_is_outside_one(tmp_path: Path) -> None:
    project = make_project(tmp_path / "ops")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    found = project_root(cwd=outside, environ={PROJECT_DIR_ENV: str(project)})

    assert found == project.resolve()


def test_no_project_anywhere_is_a_usage_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        project_root(cwd=tmp_path, environ={})

    assert info.value.exit_code == ExitCode.USAGE
    assert "--project-dir" in str(info.value)
    assert PROJECT_DIR_ENV in str(info.value)


def test_a_project_dir_without_playbooks_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("")

    with pytest.raises(InputError, match=r"needs ansible\.cfg and playbooks/"):
        project_root(explicit=tmp_path, cwd=tmp_path, environ={})


# --- inventory resolution ----------------------------------------------------------


def test_inventory_name_resolves_under_inventories(tmp_path: Path) -> None:
    project = make_project(tmp_path)

    assert resolve_inventory(project, "lab") == str((project / "inventories" / "lab").resolve())


def test_inventory_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "ops")
    custom = tmp_path / "prod.yml"
    custom.write_text("all: {}\n")
    monkeypatch.chdir(tmp_path)

    assert resolve_inventory(project, "prod.yml") == str(custom.resolve())
    assert resolve_inventory(project, str(custom)) == str(custom.resolve())


def test_no_inventory_keeps_the_ansible_cfg_default(tmp_path: Path) -> None:
    assert resolve_inventory(make_project(tmp_path), None) is None


def test_unknown_inventory_is_a_usage_error_listing_the_known_ones(tmp_path: Path) -> None:
    project = make_project(tmp_path)

    with pytest.raises(InputError) as info:
        resolve_inventory(project, "staging")

    assert info.value.exit_code == ExitCode.USAGE
    assert "known inventories: lab, lab-single" in str(info.value)


# --- run directories ---------------------------------------------------------------


def test_only_the_newest_runs_are_kept(tmp_path: Path) -> None:
    runs = tmp_path / "state" / "runner"
    runs.mkdir(parents=True)
    names = [f"2026010{day}T120000000000Z-release" for day in range(1, 6)]
    for name in names:
        finished(runs / name)
    (runs / "notes").mkdir()

    prune_runs(runs, keep=2)

    assert sorted(p.name for p in runs.iterdir()) == sorted([*names[-2:], "notes"])


def finished(run: Path) -> Path:
    (run / "artifacts" / "run").mkdir(parents=True)
    (run / "artifacts" / "run" / "status").write_text("successful")
    return run


def test_a_run_that_may_still_be_running_is_never_pruned(tmp_path: Path) -> None:
    runs = tmp_path / "state" / "runner"
    runs.mkdir(parents=True)
    running = runs / "20260101T120000000000Z-release"
    (running / "artifacts" / "run").mkdir(parents=True)
    (running / "artifacts" / "run" / "stdout").write_text("TASK [Deploy] ...")
    later = [finished(runs / f"2026010{day}T120000000000Z-status") for day in range(2, 5)]

    prune_runs(runs, keep=1)

    assert sorted(p.name for p in runs.iterdir()) == [running.name, later[-1].name]
    prune_runs(runs, keep=1, now=running.stat().st_mtime + 7200)  # an abandoned run
    assert [p.name for p in runs.iterdir()] == [later[-1].name]


def test_a_new_run_dir_leaves_room_for_itself(tmp_path: Path) -> None:
    runs = tmp_path / "state" / "runner"
    runs.mkdir(parents=True)
    for day in range(1, 4):
        finished(runs / f"2026010{day}T120000000000Z-status")

    fresh = new_run_dir(tmp_path, "release", keep=3)

    assert fresh.parent == runs
    assert fresh.name.endswith("-release")
    assert len(list(runs.iterdir())) == 3


# --- reading results ---------------------------------------------------------------


def test_no_log_result_shows_only_ansibles_censored_text() -> None:
    res = {"censored": "the output has been hidden due to the fact that 'no_log: true' ..."}

    assert result_message(res) == res["censored"]


def test_command_failure_message_has_rc_and_stderr() -> None:
    res = {"msg": "non-zero return code", "rc": 3, "stderr": "relation does not exist\n"}

    assert result_message(res) == "non-zero return code (rc=3)\nrelation does not exist"


def test_loop_failure_names_the_failed_items() -> None:
    res = {
        "msg": "One or more items failed",
        "results": [
            {"item": "blue", "failed": False, "msg": "fine"},
            {"item": "green", "failed": True, "msg": "port 8002 not listening"},
        ],
    }

    assert result_message(res).splitlines() == [
        "One or more items failed",
        "item green: port 8002 not listening",
    ]


def test_collector_keeps_real_failures_errors_and_stats() -> None:
    forwarded: list[str] = []

    def broken_display(event: dict) -> None:
        forwarded.append(event["event"])
        raise RuntimeError("display bug")

    collector = EventCollector(broken_display)
    events = [
        {"event": "verbose", "stdout": "\x1b[0;31m[ERROR]: couldn't resolve module\x1b[0m"},
        {"event": "verbose", "stdout": "\x1b[0;31mOrigin: playbooks/release.yml:3:7\x1b[0m"},
        {
            "event": "runner_on_failed",
            "event_data": {"host": "app-blue", "task": "Probe", "ignore_errors": True, "res": {}},
        },
        {
            "event": "runner_on_unreachable",
            "event_data": {"host": "lb1", "task": "Switch", "res": {"msg": "ssh: timed out"}},
        },
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"lb1": 2}, "dark": {"lb1": 1}, "artifact_data": {"x": 1}},
        },
    ]
    for event in events:
        assert collector(event) is True
    collector.finish()

    assert forwarded == ["verbose"]
    assert collector.errors == [
        "[ERROR]: couldn't resolve module\nOrigin: playbooks/release.yml:3:7"
    ]
    assert collector.failures == [Failure("lb1", "Switch", "ssh: timed out")]
    assert collector.stats["lb1"]["unreachable"] == 1
    assert collector.custom_stats == {"x": 1}


# --- one real run ------------------------------------------------------------------

PLAYBOOK = """\
- name: Report, then fail
  hosts: all
  gather_facts: false
  tasks:
    - name: Report what is live
      ansible.builtin.set_stats:
        aggregate: false
        data:
          bluegreen_status:
            active_colour: blue
            colours: {blue: {version: "{{ bluegreen_cli.app_version }}", healthy: true}}
    - name: Run the migration
      ansible.builtin.command: sh -c 'echo "relation app_user does not exist" >&2; exit 3'
      changed_when: false
"""


@pytest.mark.parametrize("strategy", ["bluegreen_mitogen_linear", "mitogen_linear", "linear"])
def test_real_run_reports_custom_stats_and_a_failing_task_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    monkeypatch.setenv("BLUEGREEN_ANSIBLE_STRATEGY", strategy)
    project = make_project(tmp_path / "ops")
    (project / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    (project / "inventories" / "local").mkdir()
    (project / "inventories" / "local" / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    (project / "playbooks" / "probe.yml").write_text(PLAYBOOK)
    events: list[str] = []

    result = run_playbook(
        project,
        "playbooks/probe.yml",
        extravars={"app_version": "1.4.2"},
        inventory="local",
        on_event=lambda event: events.append(event["event"]),
    )

    assert result.custom_stats["bluegreen_status"] == {
        "active_colour": "blue",
        "colours": {"blue": {"version": "1.4.2", "healthy": True}},
    }
    assert result.outcome is None
    assert result.rc != 0
    assert result.failures == [
        Failure(
            "localhost",
            "Run the migration",
            "non-zero return code (rc=3)\nrelation app_user does not exist",
        )
    ]
    code, message = verdict("release", result)
    assert code == ExitCode.FAILED
    assert "Run the migration" in message and "relation app_user does not exist" in message
    # Raw output lines (a library's deprecation warning at import) arrive as "verbose".
    playbook_events = [event for event in events if event != "verbose"]
    assert playbook_events[0] == "playbook_on_start" and playbook_events[-1] == "playbook_on_stats"
    run_dir = result.artifact_dir.parents[1]
    assert run_dir.parent == project.resolve() / "state" / "runner"
    assert not (run_dir / "env" / "extravars").exists()
    assert "1.4.2" not in (result.artifact_dir / "command").read_text()
    assert os.stat(run_dir).st_mode & 0o077 == 0


def test_inventory_name_is_the_folder_of_the_inventory_or_ansible_cfgs(tmp_path) -> None:
    from bluegreen.runner import inventory_name

    (tmp_path / "inventories" / "lab-single").mkdir(parents=True)
    (tmp_path / "inventories" / "lab-single" / "hosts.yml").write_text("all: {}\n")
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = inventories/lab\n")

    assert inventory_name(tmp_path, "lab-single") == "lab-single"
    assert inventory_name(tmp_path, str(tmp_path / "inventories/lab-single/hosts.yml")) == (
        "lab-single"
    )
    assert inventory_name(tmp_path, None) == "lab"


def test_the_commands_inputs_go_under_one_variable_and_role_settings_stay_on_top() -> None:
    assert namespaced_extravars(
        {"app_version": "2.0.0", "rollback_data": True, "bluegreen_lock_wait_seconds": 60}
    ) == {
        "bluegreen_lock_wait_seconds": 60,
        "bluegreen_cli": {"app_version": "2.0.0", "rollback_data": True},
    }
    assert namespaced_extravars({"bluegreen_expected_app": "shop"}) == {
        "bluegreen_expected_app": "shop"
    }


def test_commands_run_with_mitogens_strategy_found_in_the_installed_packages() -> None:
    env = strategy_envvars(None)

    assert env["ANSIBLE_STRATEGY"] == "bluegreen_mitogen_linear"
    own, mitogens = map(Path, env["ANSIBLE_STRATEGY_PLUGINS"].split(os.pathsep))
    assert (own / "bluegreen_mitogen_linear.py").is_file()
    assert (mitogens / "mitogen_linear.py").is_file()
    assert strategy_envvars("mitogen_linear")["ANSIBLE_STRATEGY"] == "mitogen_linear"


def test_another_strategy_is_taken_as_named_with_no_plugin_path() -> None:
    assert strategy_envvars("linear") == {"ANSIBLE_STRATEGY": "linear"}


def test_mitogen_asked_for_but_missing_is_bad_input_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)

    with pytest.raises(InputError, match=r"pip install mitogen.*BLUEGREEN_ANSIBLE_STRATEGY=linear"):
        strategy_envvars("mitogen_free")


def test_the_strategy_compiles_each_scanned_file_once_per_command() -> None:
    import ansible_mitogen.module_finder

    from bluegreen.strategy_plugins import bluegreen_mitogen_linear as plugin

    assert ansible_mitogen.module_finder.compile is plugin.compiled
    first = plugin.compiled(b"import os\n", "a.py", "exec")
    assert plugin.compiled(b"import os\n", "a.py", "exec") is first
    changed = plugin.compiled(b"import sys\n", "a.py", "exec")
    assert changed is not first and "sys" in changed.co_names


def test_the_strategy_wakes_when_a_result_is_appended_not_at_its_next_poll() -> None:
    import threading

    from bluegreen.strategy_plugins import bluegreen_mitogen_linear as plugin

    condition = threading.Condition(threading.Lock())
    results = plugin.NotifyingResults(condition, ["earlier"])
    woke: list[bool] = []
    waiting = threading.Event()

    def waiter() -> None:
        with condition:
            waiting.set()  # the lock is free again only once wait() sleeps
            woke.append(condition.wait(30))  # False: it slept until the timeout

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    with condition:  # as Ansible's results thread appends, the waiter asleep
        results.append("result")
    thread.join(5)

    assert list(results) == ["earlier", "result"]
    assert woke == [True], "the waiter slept until its timeout: append did not wake it"


def test_a_result_appended_without_the_lock_is_kept_for_the_next_check() -> None:
    import threading

    from bluegreen.strategy_plugins import bluegreen_mitogen_linear as plugin

    results = plugin.NotifyingResults(threading.Condition(threading.Lock()))

    results.append("result")

    assert list(results) == ["result"]


IN_PROCESS_PLAYBOOK = """\
- name: Tasks that never leave the controller, on two hosts
  hosts: all
  gather_facts: false
  vars:
    bluegreen_strategy_connect_ahead: "{{ ['second'] }}"
  tasks:
    - name: Name each host's own fact
      ansible.builtin.set_fact:
        own: "{{ inventory_hostname }}-{{ item }}"
        pid_here: "{{ 'ansible-playbook' | bluegreen_controller_pid }}"
      loop: [1]
    - name: Include tasks for each host
      ansible.builtin.include_tasks: included.yml
    - name: Read the pid in a worker
      ansible.builtin.command: echo {{ 'ansible-playbook' | bluegreen_controller_pid }}
      register: in_worker
      changed_when: false
    - name: Report what each host kept
      ansible.builtin.set_stats:
        aggregate: true
        data:
          seen: >-
            {{ {inventory_hostname: [own, included, pid_here | int, in_worker.stdout | int]} }}
    - name: Fail on one host only, with a message
      ansible.builtin.assert:
        that: inventory_hostname != 'second'
        fail_msg: "second refused"
"""


def test_the_strategy_runs_controller_tasks_in_its_process_each_host_with_its_own_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUEGREEN_ANSIBLE_STRATEGY", "bluegreen_mitogen_linear")
    project = make_project(tmp_path / "ops")
    filters = Path(__file__).resolve().parents[2] / "filter_plugins"
    (project / "ansible.cfg").write_text(
        f"[defaults]\nretry_files_enabled = False\nfilter_plugins = {filters}\n"
    )
    (project / "inventories" / "local").mkdir()
    (project / "inventories" / "local" / "hosts.yml").write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "  hosts:\n    first: {}\n    second: {}\n"
    )
    (project / "playbooks" / "probe.yml").write_text(IN_PROCESS_PLAYBOOK)
    (project / "playbooks" / "included.yml").write_text(
        "- name: Set a fact in an included file\n"
        "  ansible.builtin.set_fact:\n    included: '{{ own }}-included'\n"
    )

    verbose: list[str] = []
    result = run_playbook(
        project,
        "playbooks/probe.yml",
        inventory="local",
        verbosity=3,
        on_event=lambda event: verbose.append(str(event.get("stdout", ""))),
    )

    assert any("opening the connection to second ahead" in line for line in verbose)
    seen = result.custom_stats["seen"]
    assert [seen["first"][:2], seen["second"][:2]] == [
        ["first-1", "first-1-included"],
        ["second-1", "second-1-included"],
    ]
    # The same ansible-playbook process, named from a task run in it and from a worker.
    pids = {pid for values in seen.values() for pid in values[2:]}
    assert len(pids) == 1 and pids != {os.getpid()}
    failed = Failure("second", "Fail on one host only, with a message", "second refused")
    assert result.failures == [failed]


def test_only_includes_and_actions_needing_no_connection_run_in_the_strategys_process() -> None:
    from types import SimpleNamespace

    from ansible.plugins.loader import init_plugin_loader

    from bluegreen.strategy_plugins import bluegreen_mitogen_linear as plugin

    init_plugin_loader()  # as ansible-playbook does before any strategy runs

    def task(action: str, async_val: int = 0) -> SimpleNamespace:
        return SimpleNamespace(action=action, async_val=async_val, collections=[])

    assert plugin.runs_in_process(task("ansible.builtin.set_fact"))
    assert plugin.runs_in_process(task("assert"))
    assert plugin.runs_in_process(task("include_role"))
    assert plugin.runs_in_process(task("ansible.builtin.include_tasks"))
    assert not plugin.runs_in_process(task("ansible.builtin.command"))  # a module, no plugin
    assert not plugin.runs_in_process(task("ansible.builtin.template"))  # a plugin, connected
    assert not plugin.runs_in_process(task("ansible.builtin.assert", async_val=30))


def test_the_controller_pid_is_this_process_here_and_its_parent_in_a_forked_child() -> None:
    import importlib.util
    import multiprocessing

    path = Path(__file__).resolve().parents[2] / "filter_plugins" / "controller_process.py"
    spec = importlib.util.spec_from_file_location("controller_process", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.bluegreen_controller_pid() == os.getpid()

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=lambda: queue.put(module.bluegreen_controller_pid()))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == os.getpid()


def test_each_host_named_to_connect_ahead_is_opened_once_if_the_inventory_has_it() -> None:
    from bluegreen.strategy_plugins import bluegreen_mitogen_linear as plugin

    known = ["lb1", "lb2", "app-blue"]
    assert plugin.hosts_to_connect_ahead(["lb1", "lb2", "lb1"], known) == ["lb1", "lb2"]
    assert plugin.hosts_to_connect_ahead("lb2", known) == ["lb2"]
    assert plugin.hosts_to_connect_ahead(["nowhere"], known) == []
    assert plugin.hosts_to_connect_ahead(None, known) == []
    plugin._AHEAD_HOSTS.add("lb1")
    try:
        assert plugin.hosts_to_connect_ahead(["lb1", "lb2"], known) == ["lb2"]
    finally:
        plugin._AHEAD_HOSTS.discard("lb1")


def test_the_ssh_socket_folder_is_made_in_the_users_home_from_the_user_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pwd
    from types import SimpleNamespace

    from bluegreen.runner import ssh_socket_folder

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: SimpleNamespace(pw_dir=str(home)))
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))

    assert ssh_socket_folder() == home / ".ansible"
    assert (home / ".ansible").is_dir()
    assert ssh_socket_folder() == home / ".ansible"  # made once, then found
