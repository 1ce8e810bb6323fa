"""migration_runner end to end against a real Django project and a SQLite database.

The fixture project (tests/unit/fixtures/migrations/django_project) has one app,
`inventory`, with three migrations: 0001 creates Product, 0002 adds a nullable field
(expand-safe), 0003 backfills it with RunPython and no reverse_code (irreversible).
Skipped when Django is not installed in the venv.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import migration_runner
import pytest
from ansible.module_utils.common import warnings as ansible_warnings

pytest.importorskip("django")

FIXTURE = Path(__file__).parent / "fixtures" / "migrations" / "django_project"
APPLIED_0001 = "inventory.0001_initial"
HEAD = "inventory.0003_backfill_note"


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    ansible_warnings._global_warnings.clear()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SQLite databases after each migration, made once with manage.py migrate."""
    directory = tmp_path_factory.mktemp("django_templates")
    project = directory / "project"
    shutil.copytree(FIXTURE, project)
    database = directory / "db.sqlite3"
    paths = {}
    for name in ("0001_initial", "0002_product_note"):
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "inventory", name],
            cwd=project,
            env={"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
        paths[name] = directory / f"{name}.db"
        shutil.copy(database, paths[name])
    return paths


@pytest.fixture
def release(tmp_path: Path) -> Path:
    directory = tmp_path / "releases" / "5.1.0"
    shutil.copytree(FIXTURE, directory)
    return directory


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def env_file(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "blue.env"
    path.write_text(f'DATABASE_URL="sqlite:///{database}"\nSECRET_KEY="django-secret-xyz"\n')
    return path


def args(release: Path, env_file: Path, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "shop",
        "tool": "django",
        "chdir": str(release),
        "command": [sys.executable, "manage.py"],
        "env_file": str(env_file),
    }
    base.update(overrides)
    return base


def columns(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[1] for row in connection.execute("PRAGMA table_info(inventory_product)")]


def test_current_names_each_app_latest_migration(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)

    result = run_module(migration_runner.main, args(release, env_file))

    assert result["current"] == APPLIED_0001
    assert result["head"] == HEAD
    assert result["changed"] is False


def test_plan_classifies_migrations_and_flags_python_code(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)

    result = run_module(migration_runner.main, args(release, env_file, state="planned"))

    assert result["direction"] == "upgrade"
    plan = {item["revision"]: item for item in result["pending"]}
    assert list(plan) == ["inventory.0002_product_note", HEAD]
    note = plan["inventory.0002_product_note"]
    assert note["file"] == "inventory/migrations/0002_product_note.py"
    assert note["classification"] == "expand-safe"
    assert note["statements"][0]["sql"] == (
        'ALTER TABLE "inventory_product" ADD COLUMN "note" text NULL'
    )
    backfill = plan[HEAD]
    assert backfill["classification"] == "warning"
    assert backfill["statements"][0]["operation"] == "python code"
    assert "inventory/migrations/0003_backfill_note.py" in backfill["statements"][0]["reason"]
    assert result["breaking"] == []


def test_upgrade_applies_every_migration(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)

    result = run_module(migration_runner.main, args(release, env_file, state="upgraded"))

    assert result["changed"] is True
    assert result["previous"] == APPLIED_0001
    assert result["current"] == HEAD
    assert (
        'ALTER TABLE "inventory_product" ADD COLUMN "note" text NULL'
        in (result["executed_statements"])
    )
    assert result["lock"]["method"] == "flock"
    assert columns(database) == ["id", "name", "note"]


def test_downgrade_to_recorded_state_of_reversible_migration(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0002_product_note"], database)

    result = run_module(
        migration_runner.main,
        args(release, env_file, state="downgraded", target=APPLIED_0001, allow_breaking=True),
    )

    assert result["changed"] is True
    assert result["current"] == APPLIED_0001
    assert result["pending"][0]["statements"][0]["classification"] == "breaking"
    assert columns(database) == ["id", "name"]


def test_downgrade_past_runpython_without_reverse_is_refused_naming_it(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)
    run_module(migration_runner.main, args(release, env_file, state="upgraded"))

    result = run_module(
        migration_runner.main,
        args(release, env_file, state="downgraded", target=APPLIED_0001, allow_breaking=True),
    )

    assert result["failed"] is True
    assert "RunPython (Raw Python operation) has no reverse_code" in result["msg"]
    assert "inventory/migrations/0003_backfill_note.py" in result["msg"]
    assert result["current"] == HEAD
    assert columns(database) == ["id", "name", "note"]


def test_unknown_target_says_how_to_name_one(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)

    result = run_module(
        migration_runner.main, args(release, env_file, state="planned", target="shop.0002")
    )

    assert result["failed"] is True
    assert "app 'shop' has no migrations" in result["msg"]
