"""The contract between the CLI and the playbooks (module_utils/release_contract.py): every
outcome a playbook can report has an exit code, a label and a notification, and the CLI,
the report, the history and the notify role read the one table."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import release_contract
import yaml
from ansible.module_utils import release_contract as contract
from ansible.module_utils.release_contract import (
    CLOSING_STEPS,
    COMMANDS,
    EVENTS,
    OUTCOMES,
    STATES,
    ExitCode,
    exit_code,
    notification,
)
from ansible.module_utils.release_outcome import (
    COMMANDS as FINISHED_COMMANDS,
)
from ansible.module_utils.release_outcome import (
    CommandFacts,
    Failure,
    release_outcome,
)

from bluegreen import cli, report
from bluegreen.runner import PlaybookResult

ROOT = Path(__file__).resolve().parents[2]


def decided_outcomes(command: str) -> set[str]:
    """Every outcome release_outcome decides for `command`, over every combination of
    the facts its playbook can record, with the success outcome that playbook passes: a
    command that moves no traffic never records it moved, or that it was in place."""
    success = COMMANDS[command].success_outcome
    assert success is not None
    traffic = (False, True) if COMMANDS[command].moves_traffic else (False,)
    found = set()
    for failure, switched, switched_back, unchanged in itertools.product(
        (None, Failure("deploy", "app-green", "unhealthy")),
        traffic,
        (None, False, True),
        traffic,
    ):
        facts = CommandFacts(
            command=command,
            failure=failure,
            switched=switched,
            switched_back=switched_back,
            unchanged=unchanged,
            success_outcome=success,
        )
        found.add(release_outcome(facts))
    return found


@pytest.mark.parametrize("command", FINISHED_COMMANDS)
def test_every_outcome_release_outcome_decides_has_an_exit_code_for_its_command(
    command: str,
) -> None:
    assert decided_outcomes(command) <= COMMANDS[command].outcomes.keys()


def test_release_outcome_finishes_the_commands_the_contract_says() -> None:
    assert set(FINISHED_COMMANDS) == {
        name for name, command in COMMANDS.items() if command.success_outcome
    }


def test_every_closing_step_is_a_command() -> None:
    assert set(CLOSING_STEPS) <= COMMANDS.keys()
    assert all(COMMANDS[step].closing_step == step for step in CLOSING_STEPS)


def test_the_commands_playbooks_close_with_a_journal_step_of_their_name() -> None:
    # recover closes another command's release, not its own: it is no closing step.
    assert CLOSING_STEPS == (
        "release",
        "rollback",
        "promote",
        "abort",
        "backup",
        "restore",
        "maintenance",
    )


def test_every_outcome_of_every_command_has_a_label_and_an_event() -> None:
    reported = {outcome for command in COMMANDS.values() for outcome in command.outcomes}

    assert reported == OUTCOMES.keys()
    for outcome in OUTCOMES.values():
        assert outcome.label
        assert outcome.event in EVENTS
        assert outcome.tone in ("good", "bad", "neutral")


# (command, outcome, exit code, event): the table in docs/architecture.md.
CONTRACT = [
    ("release", "released", 0, "success"),
    ("release", "unverified", 0, "unverified"),
    ("release", "paused", 5, "paused"),
    ("release", "held", 5, "held"),
    ("promote", "promoted", 0, "success"),
    ("promote", "released", 0, "success"),
    ("promote", "unverified", 0, "unverified"),
    ("promote", "paused", 5, "paused"),
    ("promote", "rolled_back", 4, "rollback"),
    ("abort", "aborted", 0, "success"),
    ("abort", "refused", 2, "failure"),
    ("abort", "failed_before_switch", 1, "failure"),
    ("abort", "failed", 1, "failure"),
    ("promote", "refused", 2, "failure"),
    ("promote", "failed_before_switch", 1, "failure"),
    ("promote", "failed", 1, "failure"),
    ("release", "unchanged", 0, "success"),
    ("release", "failed_before_switch", 3, "failure"),
    ("release", "rolled_back", 4, "rollback"),
    ("release", "failed", 1, "failure"),
    ("release", "refused", 2, "failure"),
    ("rollback", "rolled_back", 0, "rollback"),
    ("rollback", "unchanged", 0, "success"),
    ("rollback", "refused", 2, "failure"),
    ("rollback", "failed_before_switch", 3, "failure"),
    ("rollback", "failed", 1, "failure"),
    ("backup", "backed_up", 0, "success"),
    ("backup", "failed_before_switch", 1, "failure"),
    ("backup", "failed", 1, "failure"),
    ("backup", "refused", 2, "failure"),
    ("restore", "restored", 0, "success"),
    ("restore", "listed", 0, "success"),
    ("restore", "refused", 2, "failure"),
    ("restore", "failed_before_switch", 1, "failure"),
    ("restore", "failed", 1, "failure"),
    ("maintenance", "maintenance_on", 0, "success"),
    ("maintenance", "maintenance_off", 0, "success"),
    ("maintenance", "failed", 1, "failure"),
    ("maintenance", "refused", 2, "failure"),
    ("lock", "free", 0, "success"),
    ("lock", "locked", 0, "success"),
    ("lock", "lock_broken", 0, "success"),
    ("lock", "failed", 1, "failure"),
]


def test_the_table_is_the_whole_contract() -> None:
    assert {(command, outcome) for command, outcome, _, _ in CONTRACT} == {
        (name, outcome) for name, command in COMMANDS.items() for outcome in command.outcomes
    }


@pytest.mark.parametrize(("command", "outcome", "code", "event"), CONTRACT)
def test_cli_and_module_agree(
    run_module, command: str, outcome: str, code: int, event: str
) -> None:
    result = run_module(release_contract.main, {"command": command, "outcome": outcome})
    verdict_code, message = cli.verdict(
        command,
        PlaybookResult(
            rc=0 if code == 0 else 2,
            status="successful" if code == 0 else "failed",
            outcome=outcome,
            message="said",
        ),
    )

    assert result["exit_code"] == code == exit_code(command, outcome) == verdict_code
    assert cli.OUTCOME_EXIT_CODES[command][outcome] == code
    assert result["notification"]["event"] == event == notification(outcome)["event"]
    assert result["label"] == OUTCOMES[outcome].label
    assert message == "said"


def test_the_cli_and_the_modules_read_the_same_exit_codes() -> None:
    # The same file, imported twice: as bluegreen_module_utils (CLI), ansible.module_utils.
    assert [int(code) for code in cli.EXIT_CODE_MEANINGS] == [int(code) for code in ExitCode]
    assert [code.name for code in cli.ExitCode] == [code.name for code in ExitCode]
    assert cli.OUTCOME_EXIT_CODES == contract.OUTCOME_EXIT_CODES


def test_an_unknown_outcome_is_announced_as_a_failure_and_has_no_exit_code(run_module) -> None:
    result = run_module(release_contract.main, {"command": "release", "outcome": "exploded"})

    assert result["exit_code"] is None
    assert result["label"] is None
    assert result["notification"]["event"] == "failure"
    assert result["notification"]["severity"] == "critical"


def test_an_event_wins_over_the_outcome(run_module) -> None:
    result = run_module(release_contract.main, {"event": "start"}, check_mode=True)

    assert result["notification"] == {
        "event": "start",
        "headline": "started",
        "colour": "#439FE0",
        "severity": "info",
    }
    assert not result["changed"]


def test_the_module_refuses_an_event_the_contract_does_not_know(run_module) -> None:
    result = run_module(release_contract.main, {"event": "celebration"})

    assert result["failed"]
    assert "event" in result["msg"]


def test_every_notification_event_is_one_the_notify_role_accepts() -> None:
    specs = yaml.safe_load((ROOT / "roles/bluegreen_notify/meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROOT / "roles/bluegreen_notify/defaults/main.yml").read_text())

    assert set(options["bluegreen_notify_event"]["choices"]) == {"", *EVENTS}
    assert set(defaults["bluegreen_notify_events"]) == set(EVENTS)
    assert "bluegreen_notify_outcome_events" not in defaults


def test_the_history_styles_every_state_a_release_can_end_in() -> None:
    assert set(cli.HISTORY_STATE_STYLES) == set(STATES) - {"started"}


def test_the_report_labels_each_release_outcome_from_the_contract() -> None:
    for outcome in COMMANDS["release"].outcomes:
        record = {"step": "release", "evidence": {"outcome": outcome}, "message": "m"}
        assert report.decision([record])["summary"] == OUTCOMES[outcome].label
        assert f".{outcome}" in report._CSS


def test_examples_and_return_are_valid_yaml() -> None:
    examples = yaml.safe_load(release_contract.EXAMPLES)
    returned = yaml.safe_load(release_contract.RETURN)

    assert all(
        set(task["release_contract"]) <= set(release_contract.ARGUMENT_SPEC) for task in examples
    )
    assert returned.keys() == {"outcome", "exit_code", "label", "notification"}
