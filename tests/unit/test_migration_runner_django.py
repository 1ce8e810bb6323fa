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


def warnings_of(result: dict[str, Any]) -> list[str]:
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


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


def test_empty_database_is_planned_as_a_first_schema_in_one_process(
    run_module, release: Path, env_file: Path, database: Path, monkeypatch
) -> None:
    commands: list[list[str]] = []
    real_run = migration_runner.Runner.run

    def counting_run(self, args: list[str]):
        commands.append(args)
        return real_run(self, args)

    monkeypatch.setattr(migration_runner.Runner, "run", counting_run)

    result = run_module(migration_runner.main, args(release, env_file, state="planned"))

    assert [command[0] for command in commands] == ["shell"]
    assert [item["classification"] for item in result["pending"]] == ["expand-safe"] * 3
    assert result["pending"][0]["statements"][0]["operation"] == "first schema"
    assert result["breaking"] == []
    assert result["refusal"] is None
    assert any("the database has no tables" in w for w in warnings_of(result))


CATALOG_INITIAL = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=50)),
                ("slug", models.CharField(max_length=50)),
            ],
        ),
    ]
"""

# RenameIndex with old_fields looks the index up in the database, so its SQL cannot be
# rendered while the table that 0001 creates does not exist yet (django-taggit's 0006).
CATALOG_RENAME_INDEX = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [
        migrations.RenameIndex(model_name="tag", new_name="catalog_tag_name_slug_idx",
                               old_fields=("name", "slug")),
    ]
"""


def test_migration_whose_sql_cannot_be_rendered_is_judged_from_its_operations(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    app = release / "catalog"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "migrations" / "0001_initial.py").write_text(CATALOG_INITIAL)
    (app / "migrations" / "0002_rename_index.py").write_text(CATALOG_RENAME_INDEX)
    settings = release / "site_settings" / "settings.py"
    settings.write_text(
        settings.read_text().replace(
            'INSTALLED_APPS = ["inventory"]', 'INSTALLED_APPS = ["inventory", "catalog"]'
        )
    )
    shutil.copy(templates["0001_initial"], database)

    result = run_module(migration_runner.main, args(release, env_file, state="planned"))

    plan = {item["revision"]: item for item in result["pending"]}
    renamed = plan["catalog.0002_rename_index"]
    assert renamed["classification"] == "expand-safe", renamed
    assert renamed["statements"][0]["operation"] == "RenameIndex"
    assert plan["catalog.0001_initial"]["statements"][0]["sql"].startswith(
        'CREATE TABLE "catalog_tag"'
    )
    assert result["refusal"] is None
    warning = next(w for w in warnings_of(result) if "catalog.0002_rename_index" in w)
    assert "Found wrong number (0) of indexes" in warning


# A manage.py whose start migrates the database (an AppConfig.ready() that calls migrate):
# every command, even the read-only planning helper, applies the migrations first.
MIGRATES_ON_START = """
import os, subprocess, sys
subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], check=True,
               capture_output=True)
os.execv(sys.executable, [sys.executable, "manage.py", *sys.argv[1:]])
"""


def test_a_manage_py_that_migrates_on_start_is_caught(
    run_module, templates, release: Path, env_file: Path, database: Path
) -> None:
    shutil.copy(templates["0001_initial"], database)
    (release / "migrate_on_start.py").write_text(MIGRATES_ON_START)

    result = run_module(
        migration_runner.main,
        args(
            release,
            env_file,
            state="planned",
            command=[sys.executable, "migrate_on_start.py"],
        ),
    )

    assert result["failed"] is True
    assert result["msg"].startswith(
        "the migration tool changed the database while bluegreen only read it "
        "(django_migrations went from 1 applied migration(s) to 3 applied migration(s)): "
    )
    assert result["changed"] is True
    assert result["previous"] is None
    assert columns(database) == ["id", "name", "note"]
