"""colour_hook run for real, as the current user, against a temporary release directory
(with a venv/bin of its own) and a colour's env file: a hook that succeeds, one that fails
with its output, one that times out, secrets redacted, check mode."""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import colour_hook
import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from conftest import RunModule

USER = pwd.getpwuid(os.getuid()).pw_name
SECRET_KEY = "django-secret-key-value"
DB_PASSWORD = "db-pass-word"
ADMIN_PASSWORD = "admin-pass-word"


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    """Ansible collects warnings per process: none from before, none left for later tests."""
    ansible_warnings._global_warnings.clear()
    yield
    ansible_warnings._global_warnings.clear()


@pytest.fixture
def service(tmp_path: Path) -> dict[str, Path]:
    """releases/2.0.0 with venv/bin/greet, a colour link to it and the green env file."""
    release = tmp_path / "releases" / "2.0.0"
    bin_dir = release / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    greet = bin_dir / "greet"
    greet.write_text('#!/bin/sh\necho "hello from the release venv"\n')
    greet.chmod(0o755)
    colours = tmp_path / "colours"
    colours.mkdir()
    (colours / "green").symlink_to(release)
    env_file = tmp_path / "green.env"
    env_file.write_text(
        "# managed\n"
        'PORT="8002"\n'
        'BLUEGREEN_COLOUR="green"\n'
        'BLUEGREEN_VERSION="2.0.0"\n'
        f'DATABASE_URL="postgresql://shop:{DB_PASSWORD}@db1:5432/shop"\n'
        f'DJANGO_SECRET_KEY="{SECRET_KEY}"\n'
        'GREETING="plain value"\n'
    )
    return {"release": release, "colours": colours, "env_file": env_file}


def args(service: dict[str, Path], hooks: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "at": "after_install",
        "hooks": hooks,
        "colour": "green",
        "release_dir": str(service["release"]),
        "env_file": str(service["env_file"]),
        "user": USER,
        "secret_names": ["DJANGO_SECRET_KEY", "DATABASE_URL"],
        "host": "app1",
        **more,
    }


def test_a_hook_runs_in_the_colour_s_environment(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    hook = {
        "name": "env",
        "at": "after_install",
        "command": 'greet && pwd && echo "$BLUEGREEN_COLOUR $PORT $GREETING $USER" && '
        'echo "${PATH%%:*}"',
    }
    result = run_module(colour_hook.main, args(service, [hook]))

    assert result["changed"] and result["ok"] and not result["stops_release"]
    [run] = result["runs"]
    assert (run["ran"], run["ok"], run["exit_code"], run["timed_out"]) == (True, True, 0, False)
    assert run["excerpt"] == [
        "hello from the release venv",
        str(service["release"]),
        f"green 8002 plain value {USER}",
        str(service["release"] / "venv" / "bin"),
    ]
    assert (result["version"], run["version"], run["colour"]) == ("2.0.0", "2.0.0", "green")
    assert result["message"].startswith("after_install hooks ran on app1: env (exit 0 after")
    [record] = result["journal"]
    assert record["host"] == "app1"
    assert record["message"].startswith("after_install hook env on app1 (green 2.0.0): exit 0")
    assert record["evidence"]["excerpt"] == run["excerpt"]
    assert set(record["evidence"]) == {
        "name", "at", "host", "colour", "version", "ok", "exit_code", "timed_out",
        "duration_s", "excerpt",
    }  # fmt: skip


def test_a_failed_hook_stops_the_release_with_its_output_and_the_next_hooks_do_not_run(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    hooks = [
        {
            "name": "collectstatic",
            "at": "after_install",
            "command": "for n in $(seq 1 30); do echo line $n; done; echo boom >&2; exit 3",
        },
        {"name": "createsuperuser", "at": "after_install", "command": "touch created"},
    ]
    result = run_module(colour_hook.main, args(service, hooks))

    # The task itself does not fail: its caller journals every run, then stops the release.
    assert not result["failed"]
    assert (result["ok"], result["stops_release"], result["warning"]) == (False, True, "")
    [run] = result["runs"]
    assert (run["exit_code"], run["ok"]) == (3, False)
    assert run["excerpt"] == [f"line {n}" for n in range(12, 31)] + ["boom"]
    assert result["not_run"] == ["createsuperuser"]
    assert not (service["release"] / "created").exists()
    assert result["message"].startswith(
        "after_install hook collectstatic failed on app1 (green 2.0.0): exit 3 after"
    )
    assert "The hooks after it did not run: createsuperuser." in result["message"]
    assert result["message"].endswith(
        "Last lines of its output: line 27 | line 28 | line 29 | line 30 | boom"
    )


def test_a_hook_that_outlives_its_timeout_is_killed_with_its_children(
    run_module: RunModule, service: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "child-survived"
    hook = {
        "name": "slow",
        "at": "before_switch",
        "timeout": 1,
        "command": f"echo started; (sleep 3; touch {marker}) & sleep 30",
    }
    result = run_module(colour_hook.main, args(service, [hook], at="before_switch"))

    [run] = result["runs"]
    assert (run["timed_out"], run["exit_code"], run["ok"]) == (True, None, False)
    assert run["excerpt"] == ["started"]
    assert result["stops_release"]
    assert (
        "before_switch hook slow failed on app1 (green 2.0.0): timed out after 1 s."
        in (result["message"])
    )
    time.sleep(3)
    assert not marker.exists(), "a child of the timed-out hook kept running"


def test_secrets_never_reach_the_excerpt_or_the_result(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    hook = {
        "name": "leaky",
        "at": "after_switch",
        "command": 'echo "$DJANGO_SECRET_KEY"; echo "$DATABASE_URL"; echo "$ADMIN"; '
        "echo fine; exit 1",
        "environment": {"ADMIN": ADMIN_PASSWORD},
    }
    result = run_module(colour_hook.main, args(service, [hook], at="after_switch"))

    text = repr(result)
    for secret in (SECRET_KEY, DB_PASSWORD, ADMIN_PASSWORD):
        assert secret not in text
    [run] = result["runs"]
    assert run["excerpt"] == [
        "********",
        "********",
        "********",
        "fine",
    ]
    # After the switch a failure is a warning: the task succeeds and the release goes on.
    assert not result["failed"] and not result["stops_release"]
    assert result["warning"] == result["message"]
    assert "Warning only: the switch stands" in result["warning"]
    assert [w["event"]["msg"] for w in result["warnings"]] == [result["warning"]]


def test_check_mode_runs_nothing_and_says_what_would_run(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    marker = service["release"] / "ran"
    hooks = [
        {"name": "collectstatic", "at": "after_install", "command": f"touch {marker}"},
        {"name": "later", "at": "after_switch", "command": f"touch {marker}"},
    ]
    result = run_module(colour_hook.main, args(service, hooks), check_mode=True)

    assert not marker.exists()
    assert result["changed"] and result["ok"] and result["journal"] == []
    assert [(run["name"], run["ran"]) for run in result["runs"]] == [("collectstatic", False)]
    assert result["message"] == "after_install hooks that would run on app1: collectstatic"


def test_a_once_hook_runs_on_the_colour_s_first_host_only(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    marker = service["release"] / "admin"
    hooks = [
        {"name": "admin", "at": "after_install", "once": True, "command": f"echo x >> {marker}"}
    ]
    play_hosts = {"app0": ["blue"], "app1": ["green"], "app2": ["green"]}
    second = run_module(colour_hook.main, args(service, hooks, host="app2", play_hosts=play_hosts))
    assert not second["changed"] and second["runs"] == [] and not marker.exists()
    assert second["message"] == "no after_install hook runs on app2"
    first = run_module(colour_hook.main, args(service, hooks, play_hosts=play_hosts))
    assert first["changed"] and marker.read_text() == "x\n"


def test_after_a_rollback_the_hooks_run_in_the_release_the_colour_runs(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    hook = {"name": "where", "at": "after_rollback", "command": "pwd"}
    more = {"at": "after_rollback", "release_dir": None, "colours_dir": str(service["colours"])}
    result = run_module(colour_hook.main, args(service, [hook], **more))

    assert result["version"] == "2.0.0"
    assert result["runs"][0]["excerpt"] == [str(service["release"])]


def test_hooks_that_cannot_run_fail_before_traffic_moves_and_warn_after(
    run_module: RunModule, service: dict[str, Path], tmp_path: Path
) -> None:
    hook = {"name": "any", "at": "after_install", "command": "true"}
    missing = str(tmp_path / "blue.env")
    failed = run_module(colour_hook.main, args(service, [hook], env_file=missing))
    assert failed["failed"] and failed["stops_release"]
    assert failed["msg"].startswith(
        f"the after_install hooks could not run on app1: could not read the env file {missing}"
    )
    hook = {"name": "any", "at": "after_rollback", "command": "true"}
    warned = run_module(
        colour_hook.main, args(service, [hook], at="after_rollback", env_file=missing)
    )
    assert not warned["failed"] and "could not read the env file" in warned["warning"]


def test_bad_hooks_are_refused_before_anything_runs(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    marker = service["release"] / "ran"
    hooks = [
        {"name": "a", "at": "after_install", "command": f"touch {marker}"},
        {"name": "a", "at": "after_install", "command": f"touch {marker}"},
    ]
    result = run_module(colour_hook.main, args(service, hooks))
    assert result["failed"] and "the name 'a' is taken by hooks[0]" in result["msg"]
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_as_root_a_hook_runs_as_the_service_s_user_and_groups_only(
    run_module: RunModule, service: dict[str, Path]
) -> None:
    hook = {"name": "who", "at": "after_install", "command": 'id -un; id -gn; id -G; echo "$HOME"'}
    nobody = pwd.getpwnam("nobody")
    result = run_module(colour_hook.main, args(service, [hook], user="nobody"))

    user, group, groups, home = result["runs"][0]["excerpt"]
    assert (user, home) == ("nobody", nobody.pw_dir)
    assert group == grp.getgrgid(nobody.pw_gid).gr_name
    assert "0" not in groups.split()
