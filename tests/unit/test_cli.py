"""The CLI: exit codes from outcomes, help with examples, errors as one line."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import types
from pathlib import Path

import click
import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen.errors import ExitCode
from bluegreen.runner import Failure, PlaybookResult

runner = CliRunner()


def result(outcome: str | None, rc: int = 0, message: str | None = None) -> PlaybookResult:
    return PlaybookResult(
        rc=rc,
        status="successful" if rc == 0 else "failed",
        outcome=outcome,
        message=message,
        problem=None if rc == 0 else "task 'Migrate' failed on app-green: relation missing",
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    return tmp_path


# --- exit codes --------------------------------------------------------------------


def test_exit_codes_are_stable() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4, 5]
    assert cli.ExitCode is ExitCode


@pytest.mark.parametrize(
    ("outcome", "rc", "expected"),
    [
        ("released", 0, ExitCode.OK),
        ("unchanged", 0, ExitCode.OK),
        ("failed_before_switch", 2, ExitCode.FAILED_BEFORE_SWITCH),
        ("rolled_back", 2, ExitCode.ROLLED_BACK),
        ("rolled_back", 0, ExitCode.ROLLED_BACK),
        ("failed", 2, ExitCode.FAILED),
        ("something_new", 0, ExitCode.FAILED),
        ("releasedreleased", 0, ExitCode.FAILED),
        # a success reported, and then a later task failed: not a success
        ("released", 2, ExitCode.FAILED),
        (None, 2, ExitCode.FAILED),
        (None, 0, ExitCode.FAILED),
    ],
)
def test_release_outcome_maps_to_exit_code(outcome: str | None, rc: int, expected: int) -> None:
    assert verdict_code("release", result(outcome, rc)) == expected


@pytest.mark.parametrize(
    ("outcome", "rc", "expected"),
    [
        ("rolled_back", 0, ExitCode.OK),
        ("unchanged", 0, ExitCode.OK),
        ("failed", 2, ExitCode.FAILED),
        (None, 2, ExitCode.FAILED),
    ],
)
def test_rollback_outcome_maps_to_exit_code(outcome: str | None, rc: int, expected: int) -> None:
    assert verdict_code("rollback", result(outcome, rc)) == expected


def test_status_succeeds_when_the_playbook_did() -> None:
    assert verdict_code("status", result("ok")) == ExitCode.OK
    assert verdict_code("status", result(None)) == ExitCode.OK
    assert verdict_code("status", result(None, rc=2)) == ExitCode.FAILED


def test_failure_without_outcome_carries_the_failing_tasks_message() -> None:
    code, message = cli.verdict("release", result(None, rc=2))

    assert code == ExitCode.FAILED
    assert message == "task 'Migrate' failed on app-green: relation missing"


def test_reported_message_is_the_closing_message() -> None:
    rolled = result("rolled_back", rc=2, message="p99 latency critical on green; back on blue")

    assert cli.verdict("release", rolled) == (
        ExitCode.ROLLED_BACK,
        "p99 latency critical on green; back on blue",
    )


def verdict_code(command: str, run: PlaybookResult) -> ExitCode:
    return cli.verdict(command, run)[0]


# --- help --------------------------------------------------------------------------


def all_command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(command: click.Command, prefix: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(cli.app), [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "bluegreen")
def test_every_help_has_examples(path: list[str]) -> None:
    out = runner.invoke(cli.app, [*path, "--help"])

    assert out.exit_code == 0
    assert "Examples" in out.output
    assert "bluegreen " + " ".join(path) in out.output


def test_top_level_help_lists_the_exit_codes() -> None:
    out = runner.invoke(cli.app, ["--help"], terminal_width=120).output

    assert "Exit codes" in out
    for code, meaning in cli.EXIT_CODE_MEANINGS.items():
        assert f"{int(code)}  {meaning}" in out


# --- errors and input --------------------------------------------------------------


def test_invalid_version_is_a_usage_error_on_one_line(project: Path) -> None:
    out = runner.invoke(cli.app, ["release", "--version", "1.0; rm -rf /"])

    assert out.exit_code == ExitCode.USAGE
    assert out.output.strip().startswith("error: invalid version")
    assert "Traceback" not in out.output


def test_json_mode_reports_errors_as_json(project: Path) -> None:
    out = runner.invoke(cli.app, ["release", "--version", "1.4.2", "-i", "nope", "--json"])

    document = json.loads(out.stdout)
    assert out.exit_code == ExitCode.USAGE
    assert document["exit_code"] == ExitCode.USAGE
    assert document["outcome"] is None


def test_outside_any_project_says_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)

    out = runner.invoke(cli.app, ["status"])

    assert out.exit_code == ExitCode.USAGE
    assert "--project-dir" in out.output


def test_internal_errors_exit_1_and_debug_shows_the_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> PlaybookResult:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "run_playbook", explode)

    plain = runner.invoke(cli.app, ["rollback"])
    debug = runner.invoke(cli.app, ["--debug", "rollback"])

    assert plain.exit_code == debug.exit_code == ExitCode.FAILED
    assert "internal error: KeyError" in plain.output and "--debug" in plain.output
    assert "Traceback" not in plain.output
    assert "Traceback" in debug.output


# --- commands, with the playbook run faked -----------------------------------------


def test_release_json_has_outcome_exit_code_and_stats_but_no_extravars(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []

    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        calls.append({"playbook": playbook, "extravars": extravars, "inventory": inventory})
        return PlaybookResult(
            rc=2,
            status="failed",
            outcome="rolled_back",
            message="error rate critical on green; traffic back on blue",
            stats={"lb1": {"ok": 9, "changed": 2, "failed": 0, "unreachable": 0}},
            failures=[Failure("localhost", "Judge the golden signals", "critical")],
        )

    monkeypatch.setattr(cli, "run_playbook", fake_run)

    out = runner.invoke(cli.app, ["release", "--version", "1.4.2", "-i", "lab", "--json"])

    document = json.loads(out.stdout)
    assert out.exit_code == ExitCode.ROLLED_BACK
    assert calls == [
        {
            "playbook": "playbooks/release.yml",
            "extravars": {"app_version": "1.4.2"},
            "inventory": "lab",
        }
    ]
    assert document["outcome"] == "rolled_back"
    assert document["exit_code"] == 4
    assert document["stats"]["lb1"]["changed"] == 2
    assert "app_version" not in out.stdout


def test_release_passes_allow_breaking_migrations_only_when_asked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []

    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        calls.append(extravars)
        return PlaybookResult(rc=0, status="successful", outcome="released", message="ok")

    monkeypatch.setattr(cli, "run_playbook", fake_run)

    runner.invoke(cli.app, ["release", "--version", "1.4.2", "-i", "lab"])
    runner.invoke(
        cli.app, ["release", "--version", "3.0.0", "-i", "lab", "--allow-breaking-migrations"]
    )

    assert calls == [
        {"app_version": "1.4.2"},
        {"app_version": "3.0.0", "allow_breaking_migrations": True},
    ]


def test_status_renders_colours_and_load_balancers(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = {
        "active_colour": "green",
        "lb": {"lb1": "green", "lb2": "blue"},
        "colours": {
            "blue": {"version": "1.4.1", "healthy": True},
            "green": {"version": "1.4.2", "healthy": False},
        },
    }

    def fake_run(*args: object, **kwargs: object) -> PlaybookResult:
        return PlaybookResult(
            rc=0,
            status="successful",
            outcome="ok",
            message="green is live",
            custom_stats={"bluegreen_status": report},
        )

    monkeypatch.setattr(cli, "run_playbook", fake_run)

    out = runner.invoke(cli.app, ["status"], terminal_width=120)

    assert out.exit_code == ExitCode.OK
    green_row = next(line for line in out.output.splitlines() if "1.4.2" in line)
    assert "green" in green_row and "no" in green_row and "live" in green_row
    assert "disagree" in out.output


def test_status_view_is_plain_when_everything_agrees() -> None:
    console = Console(file=io.StringIO(), width=100)
    console.print(
        cli.status_view(
            {
                "active_colour": "blue",
                "lb": {"lb1": "blue"},
                "colours": {"blue": {"version": "2.0.0", "healthy": True}},
            }
        )
    )

    out = console.file.getvalue()
    assert "2.0.0" in out and "disagree" not in out


def test_status_view_says_what_the_journal_says_of_each_colours_version() -> None:
    console = Console(file=io.StringIO(), width=100)
    console.print(
        cli.status_view(
            {
                "active_colour": "green",
                "lb": {"lb1": "green"},
                "colours": {
                    "blue": {"version": "1.0.0", "healthy": True},
                    "green": {"version": "2.0.0", "healthy": True},
                },
                "version_states": {
                    "1.0.0": {"state": "verified", "release_id": "r1"},
                    "2.0.0": {"state": "unverified", "release_id": "r2"},
                },
            }
        )
    )

    rows = {
        line.split()[1]: line
        for line in console.file.getvalue().splitlines()
        if "│" in line and ("blue" in line or "green" in line)
    }
    assert "unverified" in rows["green"] and "verified" in rows["blue"]
    assert "unverified" not in rows["blue"]


@dataclasses.dataclass
class FakeArtifact:
    name: str
    version: str
    path: Path
    sha256: str
    size: int


def test_build_writes_to_the_projects_artifacts_by_default(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = tmp_path / "shop-api"
    service.mkdir()
    seen: dict = {}

    def build_artifact(project_dir, output_dir, version=None, force=False):
        seen.update(project_dir=project_dir, output_dir=output_dir, version=version, force=force)
        return FakeArtifact(
            "shop-api", "1.4.2", output_dir / "shop-api-1.4.2.tar.gz", "ab" * 32, 2048
        )

    fake = types.ModuleType("bluegreen.build")
    fake.build_artifact = build_artifact
    monkeypatch.setitem(sys.modules, "bluegreen.build", fake)

    out = runner.invoke(cli.app, ["build", str(service), "--version", "1.4.2"], terminal_width=200)

    assert out.exit_code == 0, out.output
    assert seen == {
        "project_dir": service.resolve(),
        "output_dir": project / "artifacts",
        "version": "1.4.2",
        "force": False,
    }
    assert "ab" * 32 in out.output and "2.0 KiB" in out.output


def test_lab_status_shows_a_row_per_container(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Lab:
        def __init__(self, root: Path) -> None:
            assert root == project

        def status(self) -> list[dict]:
            return [
                {
                    "name": "lb1",
                    "container": "bluegreen-lab-lb1",
                    "state": "running",
                    "ssh_port": 2201,
                    "http_port": 8080,
                }
            ]

    fake = types.ModuleType("bluegreen.lab")
    fake.Lab = Lab
    monkeypatch.setitem(sys.modules, "bluegreen.lab", fake)

    out = runner.invoke(cli.app, ["lab", "status"], terminal_width=150)

    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if "bluegreen-lab-lb1" in line)
    assert "running" in row and "2201" in row and "8080" in row


# --- maintenance -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "rc", "expected"),
    [
        ("maintenance_on", 0, ExitCode.OK),
        ("maintenance_off", 0, ExitCode.OK),
        ("failed", 2, ExitCode.FAILED),
        ("maintenance_on", 2, ExitCode.FAILED),
        (None, 2, ExitCode.FAILED),
    ],
)
def test_maintenance_outcome_maps_to_exit_code(
    outcome: str | None, rc: int, expected: ExitCode
) -> None:
    assert verdict_code("maintenance", result(outcome, rc)) == expected


def test_maintenance_help_names_the_states_options_and_examples() -> None:
    out = runner.invoke(cli.app, ["maintenance", "--help"], terminal_width=160).output

    assert "on|off" in out
    assert "--retry-after" in out and "--message" in out
    assert "bluegreen maintenance on --retry-after 900" in out
    assert "bluegreen maintenance off -i lab-single --json" in out


def fake_maintenance_run(calls: list[dict], outcome: str, changed: bool):
    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        calls.append({"playbook": playbook, "extravars": extravars, "inventory": inventory})
        return PlaybookResult(
            rc=0,
            status="successful",
            outcome=outcome,
            message="maintenance mode is on on lb1",
            custom_stats={"bluegreen_maintenance": {"state": "on", "changed": changed}},
        )

    return fake_run


def test_maintenance_on_passes_the_page_options_to_the_playbook(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_maintenance_run(calls, "maintenance_on", True))

    out = runner.invoke(
        cli.app,
        ["maintenance", "on", "--retry-after", "900", "--message", "Back at 14:00 UTC.", "--json"],
    )

    document = json.loads(out.stdout)
    assert out.exit_code == ExitCode.OK
    assert calls == [
        {
            "playbook": "playbooks/maintenance.yml",
            "extravars": {
                "maintenance": "on",
                "bluegreen_lb_maintenance_retry_after": 900,
                "bluegreen_lb_maintenance_message": "Back at 14:00 UTC.",
            },
            "inventory": None,
        }
    ]
    assert document["outcome"] == "maintenance_on"
    assert document["custom_stats"]["bluegreen_maintenance"]["changed"] is True


def test_maintenance_off_leaves_the_page_options_to_the_inventory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_maintenance_run(calls, "maintenance_off", False))

    out = runner.invoke(cli.app, ["maintenance", "off", "-i", "lab-single"])

    assert out.exit_code == ExitCode.OK, out.output
    assert calls[0]["extravars"] == {"maintenance": "off"}
    assert calls[0]["inventory"] == "lab-single"


@pytest.mark.parametrize(
    "args",
    [
        ["maintenance", "off", "--message", "Back soon."],
        ["maintenance", "off", "--retry-after", "60"],
        ["maintenance", "on", "--message", "  "],
    ],
)
def test_maintenance_refuses_page_options_that_cannot_apply(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setattr(cli, "run_playbook", fake_maintenance_run([], "maintenance_off", False))

    out = runner.invoke(cli.app, args)

    assert out.exit_code == ExitCode.USAGE
    assert out.output.strip().startswith("error: ")


@pytest.mark.parametrize(
    "args", [["maintenance", "maybe"], ["maintenance", "on", "--retry-after", "0"]]
)
def test_maintenance_rejects_bad_state_or_retry_after(project: Path, args: list[str]) -> None:
    assert runner.invoke(cli.app, args).exit_code == ExitCode.USAGE
