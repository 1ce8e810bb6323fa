"""Release hooks: the decisions of module_utils/hooks.py (the inventory check, which hooks
run on which host, their environment, the excerpt and what is said about each run)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.hooks import (
    EXCERPT_LINE_CHARS,
    EXCERPT_LINES,
    SERVICE_PATH,
    Hook,
    HookError,
    HookRun,
    blocks,
    excerpt,
    failure_message,
    hook_environment,
    hook_problems,
    hooks_for_host,
    hooks_from,
    journal_evidence,
    problem_report,
    report,
    run_message,
    secret_values,
)
from ansible.module_utils.release_journal import REDACTED, redact

COLLECTSTATIC = {
    "name": "collectstatic",
    "at": "after_install",
    "command": "django-admin collectstatic --noinput",
}
ADMIN = {
    "name": "createsuperuser",
    "at": "after_install",
    "command": "django-admin createsuperuser --noinput --username admin",
    "once": True,
    "environment": {"DJANGO_SUPERUSER_PASSWORD": "s3cret-admin-pw"},
}
NAME = "bluegreen_service_hooks"


def test_good_hooks_have_no_problem() -> None:
    assert hook_problems([COLLECTSTATIC, ADMIN], NAME) == []
    assert hook_problems([], NAME) == []
    assert hook_problems(None, NAME) == []


def test_the_defaults_of_a_hook() -> None:
    [hook] = hooks_from([COLLECTSTATIC])
    assert (hook.once, hook.timeout, dict(hook.environment)) == (False, 300, {})


@pytest.mark.parametrize(
    ("hooks", "problem"),
    [
        (
            {"name": "x"},
            f"{NAME} is a dict; give a list of hooks, e.g. [{{name: collectstatic, at: "
            "after_install, command: django-admin collectstatic --noinput}]",
        ),
        (["collectstatic"], f"{NAME}[0] is a string, not a hook; give a dict"),
        (
            [{**COLLECTSTATIC, "at": "after_deploy"}],
            f"{NAME}[0] (collectstatic): at 'after_deploy' is not a point of a release; give one"
            " of after_install, before_switch, after_switch, after_rollback",
        ),
        (
            [{**COLLECTSTATIC, "at": "after_instal"}],
            "at 'after_instal' is not a point of a release (did you mean after_install?)",
        ),
        (
            [{"name": "collectstatic", "at": "after_install"}],
            f"{NAME}[0] (collectstatic): command is missing; give the command /bin/sh -c runs",
        ),
        ([{**COLLECTSTATIC, "command": "  "}], "(collectstatic): command is a string, not a"),
        (
            [COLLECTSTATIC, {**ADMIN, "name": "collectstatic"}],
            f"{NAME}[1] (collectstatic): the name 'collectstatic' is taken by {NAME}[0]; give"
            " each hook a unique name",
        ),
        ([{**COLLECTSTATIC, "timeout": 0}], "timeout 0 is not a whole number of seconds above 0"),
        ([{**COLLECTSTATIC, "timeout": -5}], "timeout -5 is not a whole number of seconds"),
        ([{**COLLECTSTATIC, "timeout": "600"}], "timeout '600' is not a whole number of seconds"),
        ([{**COLLECTSTATIC, "timeout": 1.5}], "timeout 1.5 is not a whole number of seconds"),
        ([{**COLLECTSTATIC, "timeout": True}], "timeout True is not a whole number of seconds"),
        ([{**COLLECTSTATIC, "once": "yes"}], "(collectstatic): once must be true"),
        (
            [{**COLLECTSTATIC, "environment": ["A=1"]}],
            "(collectstatic): environment is a list; give a dict of variable name to value",
        ),
        (
            [{**COLLECTSTATIC, "environment": {"DEBUG": 1}}],
            "(collectstatic): environment DEBUG is a number; quote it, every value must be a"
            " string",
        ),
        (
            [{**COLLECTSTATIC, "environment": {"1BAD": "x"}}],
            "environment name '1BAD' is not a variable name",
        ),
        (
            [{**COLLECTSTATIC, "comand": "x"}],
            "(collectstatic): unknown key 'comand'; did you mean 'command'?",
        ),
        ([{"at": "after_install", "command": "true"}], f"{NAME}[0]: name is missing"),
    ],
)
def test_a_bad_hook_is_named_with_the_fix(hooks: Any, problem: str) -> None:
    problems = hook_problems(hooks, NAME)
    assert any(problem in found for found in problems), problems


def test_a_problem_never_shows_an_environment_value() -> None:
    hooks = [
        {**ADMIN, "environment": {"PASSWORD": 123456789, "TOKEN": "tok-value-1"}, "timeout": 0},
        {**ADMIN},
    ]
    text = "; ".join(hook_problems(hooks, NAME))
    assert "123456789" not in text and "tok-value-1" not in text and "s3cret" not in text
    assert "s3cret" not in repr(hooks_from([ADMIN]))


def test_hooks_from_refuses_bad_hooks_with_every_problem() -> None:
    with pytest.raises(HookError, match=r"\[0\].*command is missing.*\[1\].*at is missing"):
        hooks_from([{"name": "a", "at": "after_install"}, {"name": "b", "command": "true"}])


def test_unset_keys_as_ansible_gives_them_are_defaults() -> None:
    [hook] = hooks_from([{**COLLECTSTATIC, "once": None, "timeout": None, "environment": None}])
    assert (hook.once, hook.timeout, dict(hook.environment)) == (False, 300, {})


HOSTS = {"app1": ["green"], "app2": ["green"], "app3": ["blue"], "single": ["blue", "green"]}


@pytest.mark.parametrize(
    ("host", "colour", "names"),
    [
        ("app1", "green", ["collectstatic", "createsuperuser"]),  # first green host
        ("app2", "green", ["collectstatic"]),  # once hooks: first host only
        ("app3", "green", []),  # does not run green
        ("app3", "blue", ["collectstatic", "createsuperuser"]),  # first blue host
        ("single", "blue", ["collectstatic"]),  # runs blue, but app3 is first
    ],
)
def test_the_hooks_of_a_host_follow_its_colour_and_once(
    host: str, colour: str, names: list[str]
) -> None:
    hooks = hooks_from(
        [COLLECTSTATIC, ADMIN, {**COLLECTSTATIC, "name": "late", "at": "after_switch"}]
    )
    chosen = hooks_for_host(hooks, "after_install", host, colour, HOSTS)
    assert [hook.name for hook in chosen] == names


def test_without_the_play_hosts_the_host_is_the_colour_s_only_one() -> None:
    hooks = hooks_from([COLLECTSTATIC, ADMIN])
    chosen = hooks_for_host(hooks, "after_install", "h", "blue", {})
    assert [hook.name for hook in chosen] == ["collectstatic", "createsuperuser"]
    assert hooks_for_host(hooks, "before_switch", "h", "blue", {}) == []


def test_only_the_points_before_traffic_moves_block() -> None:
    assert [blocks(at) for at in ("after_install", "before_switch")] == [True, True]
    assert [blocks(at) for at in ("after_switch", "after_rollback")] == [False, False]


ACCOUNT = {"HOME": "/var/lib/shop", "USER": "shop", "LOGNAME": "shop", "SHELL": "/sbin/nologin"}


def test_the_environment_is_the_unit_s_with_the_release_venv_first() -> None:
    env = hook_environment(
        ACCOUNT,
        {"PORT": "8002", "DATABASE_URL": "postgresql://u:pw@db/shop"},
        {"DJANGO_SUPERUSER_PASSWORD": "pw2"},
        "/opt/shop/releases/2.0.0/venv/bin",
    )
    assert env == {
        **ACCOUNT,
        "PATH": f"/opt/shop/releases/2.0.0/venv/bin:{SERVICE_PATH}",
        "PORT": "8002",
        "DATABASE_URL": "postgresql://u:pw@db/shop",
        "DJANGO_SUPERUSER_PASSWORD": "pw2",
    }


def test_the_hook_s_variables_win_and_the_venv_stays_first_on_any_path() -> None:
    env = hook_environment(ACCOUNT, {"PORT": "1", "PATH": "/x"}, {"PORT": "2"}, "/r/venv/bin")
    assert (env["PORT"], env["PATH"]) == ("2", "/r/venv/bin:/x")
    env = hook_environment(ACCOUNT, {}, {"PATH": "/r/venv/bin:/y"}, "/r/venv/bin")
    assert env["PATH"] == "/r/venv/bin:/y"


def test_the_secrets_are_the_named_env_file_values_and_every_hook_value() -> None:
    hooks = hooks_from([ADMIN, {**COLLECTSTATIC, "environment": {"EMPTY": ""}}])
    env_file = {"DJANGO_SECRET_KEY": "k3y-value", "DEBUG": "0", "DATABASE_URL": "sqlite:///x"}
    found = secret_values(env_file, ["DJANGO_SECRET_KEY", "MISSING"], hooks)
    assert found == {"k3y-value", "s3cret-admin-pw"}


def test_redaction_replaces_the_longest_secret_whole() -> None:
    assert redact("pw=abcdef and abc", ["abc", "abcdef"]) == f"pw={REDACTED} and {REDACTED}"
    assert redact("nothing", ["", "x"]) == "nothing"


def test_the_excerpt_is_the_last_lines_cut_and_redacted() -> None:
    output = "".join(f"line {n}\n" for n in range(30)) + "token=" + "T" * 10 + "x" * 400 + "\n"
    lines = excerpt(redact(output, ["T" * 10]))
    assert len(lines) == EXCERPT_LINES
    assert lines[0] == "line 11"
    assert lines[-1].startswith(f"token={REDACTED}x")
    assert len(lines[-1]) == EXCERPT_LINE_CHARS


def test_a_secret_cut_by_the_line_limit_is_redacted_first() -> None:
    secret = "S" * 50
    [line] = excerpt(redact("x" * 280 + secret + "\n", [secret]))
    assert "S" not in line and line.endswith("*" * 8)


def test_the_first_line_of_an_output_kept_from_its_end_is_dropped() -> None:
    assert excerpt("ret-tail\nline 2\nline 3", cut_at_start=True) == [
        "line 2",
        "line 3",
    ]


def run(**changes: Any) -> HookRun:
    values: dict[str, Any] = {
        "name": "collectstatic",
        "at": "after_install",
        "host": "app1",
        "colour": "green",
        "version": "2.0.0",
        "ran": True,
        "exit_code": 0,
        "duration_s": 1.234,
        "excerpt": ["0 static files copied"],
    }
    return HookRun(**{**values, **changes})


def test_a_run_is_journaled_with_its_evidence() -> None:
    assert run_message(run()) == (
        "after_install hook collectstatic on app1 (green 2.0.0): exit 0 after 1.2 s (ok)"
    )
    assert journal_evidence(run(exit_code=2)) == {
        "name": "collectstatic",
        "at": "after_install",
        "host": "app1",
        "colour": "green",
        "version": "2.0.0",
        "ok": False,
        "exit_code": 2,
        "timed_out": False,
        "duration_s": 1.234,
        "excerpt": ["0 static files copied"],
    }


def test_a_failure_names_the_hook_the_host_the_exit_code_and_the_last_lines() -> None:
    lines = [f"l{n}" for n in range(8)]
    message = failure_message(run(exit_code=1, excerpt=lines), ["createsuperuser"])
    assert message == (
        "after_install hook collectstatic failed on app1 (green 2.0.0): exit 1 after 1.2 s."
        " The release stops: the colour was not started and traffic did not move. The hooks"
        " after it did not run: createsuperuser. Fix the hook or the release, then release"
        " again. Last lines of its output: l3 | l4 | l5 | l6 | l7"
    )


def test_a_timeout_is_named_with_its_limit() -> None:
    message = failure_message(
        run(at="before_switch", exit_code=None, timed_out=True, timeout=30, excerpt=[])
    )
    assert message.startswith(
        "before_switch hook collectstatic failed on app1 (green 2.0.0): timed out after 30 s."
        " The release stops: traffic did not move."
    )
    assert message.endswith("It printed nothing.")


def test_a_failed_hook_stops_the_release_only_before_traffic_moves() -> None:
    failed = run(exit_code=3)
    stops = report("after_install", "app1", [failed], ["next"])
    assert (stops.ok, stops.stops_release, stops.warning) == (False, True, "")
    assert "The hooks after it did not run: next." in stops.message
    warns = report("after_switch", "app1", [run(at="after_switch", exit_code=3)])
    assert (warns.ok, warns.stops_release) == (False, False)
    assert warns.warning == warns.message
    assert "Warning only: the switch stands (a hook never undoes it): use the analysis" in (
        warns.warning
    )


def test_the_report_of_hooks_that_ran_well_would_run_or_none() -> None:
    done = report("after_install", "app1", [run(), run(name="b", duration_s=0.04)])
    assert done.as_dict() == {
        "ok": True,
        "stops_release": False,
        "warning": "",
        "message": "after_install hooks ran on app1: collectstatic (exit 0 after 1.2 s),"
        " b (exit 0 after 0.0 s)",
    }
    would = report("after_install", "app1", [run(ran=False, exit_code=None)])
    assert would.message == "after_install hooks that would run on app1: collectstatic"
    assert report("before_switch", "app2", []).message == "no before_switch hook runs on app2"


def test_hooks_that_cannot_run_stop_or_warn_by_their_point() -> None:
    stops = problem_report("after_install", "app1", "no env file")
    assert stops.stops_release and stops.message == (
        "the after_install hooks could not run on app1: no env file. The release stops: the"
        " colour was not started and traffic did not move."
    )
    warns = problem_report("after_rollback", "app1", "no env file")
    assert not warns.stops_release and warns.warning.endswith(
        "Warning only: the rollback stands (a hook never undoes it)."
    )


def test_a_hook_s_repr_hides_its_environment() -> None:
    hook = Hook("a", "after_install", "true", environment={"X": "hidden-value"})
    assert "hidden-value" not in repr(hook)
