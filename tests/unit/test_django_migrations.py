"""The Django helper's answers, targets, states, and the verdicts for Django operations."""

from __future__ import annotations

import pytest
from ansible.module_utils.django_migrations import (
    django_helper_script,
    django_irreversible,
    django_operation_verdict,
    django_state,
    parse_django_helper,
    parse_django_targets,
)
from ansible.module_utils.migration_error import MigrationError


class TestDjango:
    def test_targets(self) -> None:
        assert parse_django_targets("inventory.0002_note, auth.zero,shop") == [
            ("inventory", "0002_note"),
            ("auth", "zero"),
            ("shop", ""),
        ]

    def test_state_string_round_trips_as_target(self) -> None:
        state = django_state({"inventory": ["0003_backfill"], "auth": [], "shop": ["0001_a"]})

        assert state == "auth.zero,inventory.0003_backfill,shop.0001_a"
        assert parse_django_targets(state) == [
            ("auth", "zero"),
            ("inventory", "0003_backfill"),
            ("shop", "0001_a"),
        ]

    def test_irreversible_operations_are_named(self) -> None:
        reason = django_irreversible(
            [
                {"type": "AddField", "describe": "Add field x", "reversible": True},
                {"type": "RunPython", "describe": "Raw Python operation", "reversible": False},
                {"type": "RunSQL", "describe": "Raw SQL operation", "reversible": False},
            ]
        )

        assert reason == (
            "RunPython (Raw Python operation) has no reverse_code; "
            "RunSQL (Raw SQL operation) has no reverse_sql"
        )
        assert django_irreversible([{"type": "AddField", "reversible": True}]) is None

    def test_helper_script_is_valid_python_with_the_request(self) -> None:
        script = django_helper_script([("inventory", "zero")])

        compile(script, "<helper>", "exec")
        assert '[["inventory", "zero"]]' in script

    def test_helper_output_is_found_among_other_output(self) -> None:
        answer = parse_django_helper(
            '1 object imported automatically\nBLUEGREEN-MIGRATION-JSON {"current": {}}\n'
        )

        assert answer == {"current": {}}

    def test_helper_error_and_missing_output(self) -> None:
        with pytest.raises(MigrationError, match="could not plan the migrations: KeyError"):
            parse_django_helper('BLUEGREEN-MIGRATION-JSON {"error": "KeyError: x"}')
        with pytest.raises(MigrationError, match="printed no migration plan"):
            parse_django_helper("Unknown command: 'shell'")


@pytest.mark.parametrize(
    ("operation", "classification"),
    [
        ({"type": "CreateModel", "describe": "Create model Tag"}, "expand-safe"),
        ({"type": "RenameIndex", "describe": "Rename unnamed index"}, "expand-safe"),
        ({"type": "AddField", "describe": "Add field note", "null": True}, "expand-safe"),
        (
            {"type": "AddField", "describe": "Add field n", "null": False, "db_default": True},
            "expand-safe",
        ),
        (
            {"type": "AddField", "describe": "Add field tags", "null": False, "many_to_many": True},
            "expand-safe",
        ),
        ({"type": "AddField", "describe": "Add field code", "null": False}, "breaking"),
        ({"type": "RemoveField", "describe": "Remove field code"}, "breaking"),
        ({"type": "DeleteModel", "describe": "Delete model Query"}, "breaking"),
        ({"type": "RenameField", "describe": "Rename field a to b"}, "breaking"),
        ({"type": "AlterField", "describe": "Alter field url"}, "warning"),
        ({"type": "AlterUniqueTogether", "describe": "Alter unique_together"}, "warning"),
        ({"type": "RunPython", "describe": "Raw Python operation", "sql": False}, "warning"),
        ({"type": "FancyThirdPartyOperation", "describe": "Do something"}, "breaking"),
    ],
)
def test_django_operation_verdict_judges_what_the_operation_does(
    operation: dict, classification: str
) -> None:
    verdict = django_operation_verdict(operation, "app/migrations/0002_x.py")
    assert verdict.classification == classification
    assert operation["describe"] in verdict.sql
    if classification == "breaking":
        assert verdict.reason
