"""The restore, snapshot list and data rollback commands: what they ask of the playbooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen.errors import ExitCode
from bluegreen.runner import PlaybookResult

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    return tmp_path


def fake_run(calls: list[dict], outcome: str, rc: int = 0, stats: dict | None = None):
    def run(project, playbook, extravars, inventory, on_event=None, verbosity=0, **kwargs):
        calls.append({"playbook": playbook, "extravars": extravars, "inventory": inventory})
        return PlaybookResult(
            rc=rc,
            status="successful" if rc == 0 else "failed",
            outcome=outcome,
            message=f"{outcome} message",
            custom_stats=stats or {},
        )

    return run


@pytest.mark.parametrize(
    ("outcome", "rc", "expected"),
    [
        ("restored", 0, ExitCode.OK),
        ("listed", 0, ExitCode.OK),
        ("refused", 2, ExitCode.USAGE),
        ("failed_before_switch", 2, ExitCode.FAILED),
        ("failed", 2, ExitCode.FAILED),
    ],
)
def test_restore_outcome_maps_to_exit_code(outcome: str, rc: int, expected: ExitCode) -> None:
    status = "successful" if rc == 0 else "failed"
    run = PlaybookResult(rc=rc, status=status, outcome=outcome, message="m")
    assert cli.verdict("restore", run)[0] == expected


def test_a_refused_data_rollback_is_a_usage_error() -> None:
    run = PlaybookResult(rc=2, status="failed", outcome="refused", message="would lose writes")
    assert cli.verdict("rollback", run) == (ExitCode.USAGE, "would lose writes")


def test_restore_without_yes_asks_the_playbook_without_a_confirmation(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_run(calls, "refused", rc=2))

    out = runner.invoke(cli.app, ["restore", "20261122T020304Z-1a2b3c", "--json"])

    assert out.exit_code == ExitCode.USAGE
    assert calls == [
        {
            "playbook": "playbooks/restore.yml",
            "extravars": {"restore_snapshot": "20261122T020304Z-1a2b3c"},
            "inventory": None,
        }
    ]
    assert json.loads(out.stdout)["outcome"] == "refused"


def test_restore_with_yes_confirms_the_same_snapshot(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_run(calls, "restored"))

    out = runner.invoke(cli.app, ["restore", "snap-1", "--yes", "-i", "lab-single"])

    assert out.exit_code == ExitCode.OK, out.output
    assert calls[0]["extravars"] == {"restore_snapshot": "snap-1", "restore_confirm": "snap-1"}
    assert calls[0]["inventory"] == "lab-single"


@pytest.mark.parametrize("args", [["restore"], ["restore", "../etc"], ["restore", " "]])
def test_restore_needs_a_valid_snapshot_id_and_runs_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_run(calls, "restored"))

    out = runner.invoke(cli.app, args)

    assert out.exit_code == ExitCode.USAGE
    assert "restore --list" in out.output
    assert calls == []


@pytest.mark.parametrize("command", ["restore", "backup"])
def test_list_shows_the_snapshots_and_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    calls: list[dict] = []
    snapshots = [
        {
            "snapshot_id": "20261122T020304Z-1a2b3c",
            "started": "2026-11-22T02:03:04.120933Z",
            "size_bytes": 8192,
            "checksum": "9f86d081884c7d659a2feaa0c55ad015",
            "release_id": "r1",
            "revision": "0002",
            "verified": True,
        }
    ]
    monkeypatch.setattr(
        cli, "run_playbook", fake_run(calls, "listed", stats={"bluegreen_snapshots": snapshots})
    )

    out = runner.invoke(cli.app, [command, "--list", "--json"])

    assert out.exit_code == ExitCode.OK, out.output
    assert [(c["playbook"], c["extravars"]) for c in calls] == [
        ("playbooks/restore.yml", {"restore_list": True})
    ]
    assert json.loads(out.stdout)["snapshots"] == snapshots


def test_snapshot_table_names_every_column_and_says_unknown_verification() -> None:
    console = Console(width=200, record=True)
    console.print(
        cli.snapshots_view(
            [
                {"snapshot_id": "a", "size_bytes": 2048, "checksum": "ab" * 32, "verified": True},
                {"snapshot_id": "b", "verified": None},
            ]
        )
    )
    text = console.export_text()

    for column in ("id", "taken", "size", "sha256", "release", "revision", "verified"):
        assert column in text
    assert "2.0 KiB" in text
    assert "yes" in text and "?" in text


def test_no_snapshots_says_how_to_take_one() -> None:
    console = Console(width=120, record=True)
    console.print(cli.snapshots_view([]))
    assert "bluegreen backup" in console.export_text()


@pytest.mark.parametrize(
    ("args", "extravars"),
    [
        ([], {}),
        (["--with-data"], {"rollback_data": True, "rollback_accept_data_loss": False}),
        (
            ["--with-data", "--accept-data-loss"],
            {"rollback_data": True, "rollback_accept_data_loss": True},
        ),
        (
            ["--with-data", "--method", "restore"],
            {
                "rollback_data": True,
                "rollback_accept_data_loss": False,
                "rollback_data_method": "restore",
            },
        ),
    ],
)
def test_rollback_passes_the_data_options(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], extravars: dict
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_run(calls, "rolled_back"))

    out = runner.invoke(cli.app, ["rollback", *args])

    assert out.exit_code == ExitCode.OK, out.output
    assert calls[0]["playbook"] == "playbooks/rollback.yml"
    assert calls[0]["extravars"] == extravars


@pytest.mark.parametrize("args", [["--accept-data-loss"], ["--method", "restore"]])
def test_data_options_without_a_data_rollback_are_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(cli, "run_playbook", fake_run(calls, "rolled_back"))

    out = runner.invoke(cli.app, ["rollback", *args])

    assert out.exit_code == ExitCode.USAGE
    assert "--with-data" in out.output
    assert calls == []
