"""Config file defaults, --wait, --app, lock and history commands, and Ctrl-C."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen.errors import ExitCode, InputError
from bluegreen.interrupt import InterruptGuard
from bluegreen.runner import PlaybookResult
from bluegreen.settings import parse_duration

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    monkeypatch.delenv("BLUEGREEN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    return tmp_path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    recorded: list[dict] = []

    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        recorded.append({"playbook": playbook, "extravars": extravars, "inventory": inventory})
        outcome = "lock_broken" if playbook.endswith("lock.yml") else "released"
        return PlaybookResult(rc=0, status="successful", outcome=outcome, message="ok")

    monkeypatch.setattr(cli, "run_playbook", fake_run)
    return recorded


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), (" 2 min", 120)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10d", "-5", "1.5m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InputError, match="90s, 10m, 1h"):
        parse_duration(text)


def test_wait_and_app_become_extra_vars(project: Path, calls: list[dict]) -> None:
    out = runner.invoke(
        cli.app, ["release", "--version", "2.0.0", "--wait", "10m", "--app", "sampleapp", "--json"]
    )

    assert out.exit_code == 0, out.output
    assert calls[0]["extravars"] == {
        "app_version": "2.0.0",
        "bluegreen_lock_wait_seconds": 600,
        "bluegreen_expected_app": "sampleapp",
    }


@pytest.mark.parametrize(("text", "serial"), [("1", 1), ("2", 2), ("34%", "34%")])
def test_serial_becomes_the_deploy_plays_batch_size(
    project: Path, calls: list[dict], text: str, serial: int | str
) -> None:
    out = runner.invoke(cli.app, ["release", "--version", "2.0.0", "--serial", text, "--json"])

    assert out.exit_code == 0, out.output
    assert calls[0]["extravars"] == {"app_version": "2.0.0", "serial": serial}


@pytest.mark.parametrize("text", ["0", "-1", "one", "150%", "1.5"])
def test_a_bad_serial_is_a_usage_error_that_runs_nothing(
    project: Path, calls: list[dict], text: str
) -> None:
    out = runner.invoke(cli.app, ["release", "--version", "2.0.0", "--serial", text, "--json"])

    assert out.exit_code == ExitCode.USAGE
    assert "is not a batch size" in json.loads(out.stdout)["message"]
    assert calls == []


def test_a_bad_wait_is_a_usage_error_that_runs_nothing(project: Path, calls: list[dict]) -> None:
    out = runner.invoke(cli.app, ["rollback", "--wait", "soon", "--json"])

    assert out.exit_code == ExitCode.USAGE
    assert "is not a duration" in json.loads(out.stdout)["message"]
    assert calls == []


def test_the_project_config_file_gives_defaults(project: Path, calls: list[dict]) -> None:
    (project / "bluegreen.toml").write_text(
        '[defaults]\ninventory = "lab-single"\n\n[release]\nwait = "5m"\n'
    )

    runner.invoke(cli.app, ["release", "--version", "2.0.0", "--json"])
    runner.invoke(cli.app, ["rollback", "--json"])
    runner.invoke(cli.app, ["release", "--version", "2.0.0", "-i", "lab", "--json"])

    assert calls[0]["inventory"] == "lab-single"
    assert calls[0]["extravars"]["bluegreen_lock_wait_seconds"] == 300
    assert calls[1]["inventory"] == "lab-single"
    assert "bluegreen_lock_wait_seconds" not in calls[1]["extravars"]
    assert calls[2]["inventory"] == "lab"  # the command line wins


def test_a_config_table_for_a_group_applies_to_its_subcommands(
    project: Path, calls: list[dict]
) -> None:
    (project / "bluegreen.toml").write_text('[lock]\ninventory = "lab-single"\n')

    runner.invoke(cli.app, ["lock", "status", "--json"])

    assert calls[0]["inventory"] == "lab-single"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[relase]\nwait = "5m"\n', "no command relase"),
        ('[release]\nwiat = "5m"\n', "sets wiat, which `bluegreen release` does not have"),
        ('[defaults]\ncolour = "blue"\n', "[defaults] sets colour, which no command has"),
        ("[release\n", "cannot read the config file"),
    ],
)
def test_a_bad_config_file_names_the_problem(
    project: Path, calls: list[dict], text: str, message: str
) -> None:
    (project / "bluegreen.toml").write_text(text)

    out = runner.invoke(cli.app, ["rollback", "--json"])

    assert out.exit_code == ExitCode.USAGE
    assert message in out.output
    assert calls == []


def test_lock_break_without_a_terminal_needs_yes(project: Path, calls: list[dict]) -> None:
    refused = runner.invoke(cli.app, ["lock", "break", "3f6c1d2e", "--json"])
    broken = runner.invoke(cli.app, ["lock", "break", "3f6c1d2e", "--yes", "--json"])

    assert refused.exit_code == ExitCode.USAGE
    assert "pass --yes" in refused.output
    assert broken.exit_code == 0, broken.output
    assert calls == [
        {
            "playbook": "playbooks/lock.yml",
            "extravars": {"lock_action": "break", "lock_id": "3f6c1d2e"},
            "inventory": None,
        }
    ]


def test_history_shows_states_and_what_a_rollback_refuses() -> None:
    report = {
        "releases": [
            {
                "release_id": "r1",
                "command": "release",
                "version": "2.0.0",
                "colour": "green",
                "previous_colour": "blue",
                "state": "verified",
                "finished_at": "2026-11-22T02:00:00Z",
                "message": "2.0.0 is live on green",
            },
            {
                "release_id": "r2",
                "command": "release",
                "version": "2.0.1+crash",
                "colour": "blue",
                "previous_colour": "green",
                "state": "bad",
            },
        ],
        "unfinished": {"command": "release", "release_id": "r3"},
        "rollback_refused_versions": {"2.0.1+crash": "marked bad by release r2"},
    }
    console = Console(file=io.StringIO(), width=200)

    console.print(cli.history_view(report))

    text = console.file.getvalue()
    assert "blue→green" in text and "verified" in text and "bad" in text
    assert "release r3 is unfinished" in text
    assert "2.0.1+crash (marked bad by release r2)" in text


def test_history_on_an_80_column_terminal_gives_each_entry_two_unbroken_lines() -> None:
    report = {
        "releases": [
            {
                "release_id": "20261205T184256Z-6fc749",
                "command": "release",
                "version": "2.0.0",
                "colour": "green",
                "previous_colour": "blue",
                "state": "verified",
                "finished_at": "2026-12-05T18:43:10.123456Z",
                "message": "2.0.0 is live on green; blue stays warm for a rollback; "
                "post-switch analysis passed (ok): 3 of 3 measurements ok over 412 requests",
            }
        ]
    }
    console = Console(file=io.StringIO(), width=80)

    console.print(cli.history_view(report))

    lines = console.file.getvalue().splitlines()
    assert lines[1] == "20261205T184256Z-6fc749  release 2.0.0  blue→green  verified"
    assert lines[2].startswith("  2026-12-05 18:43:10  2.0.0 is live on green; blue stays warm")
    assert lines[2].endswith("…") and len(lines[2]) <= 80
    assert len(lines) == 3


def guard(answer: str, interactive: bool = True) -> InterruptGuard:
    return InterruptGuard(
        "release", Console(file=io.StringIO()), interactive=interactive, answers=io.StringIO(answer)
    )


def test_ctrl_c_asks_and_a_no_goes_on() -> None:
    with guard("n\n") as g:
        assert g() is False
        signal.raise_signal(signal.SIGINT)
        assert g() is False
        assert g() is False  # asked once per Ctrl-C


def test_ctrl_c_confirmed_stops() -> None:
    with guard("y\n") as g:
        signal.raise_signal(signal.SIGINT)
        assert g() is True


def test_without_a_terminal_ctrl_c_or_sigterm_stops_without_asking() -> None:
    with guard("", interactive=False) as g:
        signal.raise_signal(signal.SIGTERM)
        assert g() is True


def test_a_stopped_release_exits_by_what_its_recovery_did(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[str, dict]] = []

    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        runs.append((playbook, extravars))
        if playbook.endswith("release.yml"):
            kwargs["cancel_callback"].confirmed = True
            return PlaybookResult(rc=1, status="canceled", outcome=None, message=None)
        return PlaybookResult(
            rc=0,
            status="successful",
            outcome="rolled_back",
            message="interrupted release r9 of 2.0.0 rolled back: traffic never left blue",
            custom_stats={"bluegreen_recovered": {"action": "restore_idle"}},
        )

    monkeypatch.setattr(cli, "run_playbook", fake_run)

    out = runner.invoke(cli.app, ["release", "--version", "2.0.0", "--json"])

    assert runs[1] == ("playbooks/rollback.yml", {"recover_only": True})
    document = json.loads(out.stdout)
    assert out.exit_code == ExitCode.FAILED_BEFORE_SWITCH
    assert document["message"].startswith("release stopped by the operator: interrupted release")
