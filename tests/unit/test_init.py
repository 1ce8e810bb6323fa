"""`bluegreen init`: a starter inventory from a project's files, each value saying where it
was read, that passes the checks every command runs on an inventory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen.errors import ExitCode
from bluegreen.init_inventory import SERVICE, VAULT_EXAMPLE
from bluegreen.project_scan import build_command, scan_project
from bluegreen_module_utils.smoke_routes import smoke_route_problems

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
# roles/bluegreen_service/tasks/check.yml's rule for bluegreen_service_name.
SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "path": str,
    "int": int,
    "bool": bool,
    "dict": dict,
    "list": list,
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bluegreen project to run in (inventories/ is where init writes by default)."""
    home = tmp_path / "bluegreen"
    (home / "playbooks").mkdir(parents=True)
    (home / "inventories").mkdir()
    (home / "ansible.cfg").write_text("[defaults]\n")
    monkeypatch.chdir(home)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    monkeypatch.delenv("BLUEGREEN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return home


def wagtail_like_site(root: Path) -> Path:
    """What `wagtail start mysite` makes: requirements.txt, manage.py, a settings package."""
    return write_tree(
        root,
        {
            "requirements.txt": "Django>=5.2,<5.3\nwagtail>=7.0,<7.1\n",
            "Dockerfile": 'RUN pip install "gunicorn==20.0.4"\n',
            "manage.py": """
                #!/usr/bin/env python
                import os
                import sys

                def main():
                    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings.dev")
                    from django.core.management import execute_from_command_line
                    execute_from_command_line(sys.argv)
                """,
            "mysite/__init__.py": "",
            "mysite/settings/__init__.py": "",
            "mysite/settings/base.py": """
                import os
                BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                WSGI_APPLICATION = "mysite.wsgi.application"
                DATABASES = {
                    "default": {
                        "ENGINE": "django.db.backends.sqlite3",
                        "NAME": os.path.join(BASE_DIR, "db.sqlite3"),
                    }
                }
                STATIC_ROOT = os.path.join(BASE_DIR, "static")
                """,
            "mysite/settings/dev.py": 'from .base import *\nSECRET_KEY = "dev-only"\n',
            "mysite/settings/production.py": "from .base import *\nDEBUG = False\n",
            "mysite/urls.py": """
                from django.urls import include, path
                urlpatterns = [
                    path("admin/", include("wagtail.admin.urls")),
                    path("", include("wagtail.urls")),
                ]
                """,
            "mysite/wsgi.py": """
                from django.core.wsgi import get_wsgi_application
                application = get_wsgi_application()
                """,
            "home/models.py": "from wagtail.models import Page\n",
        },
    )


def flask_alembic_project(root: Path) -> Path:
    """A Flask package (src/ layout, app factory) with Alembic at the top and a uv.lock."""
    return write_tree(
        root,
        {
            "pyproject.toml": """
                [project]
                name = "shop-api"
                version = "2.1.0"
                requires-python = ">=3.11"
                dependencies = [
                    "flask>=3", "sqlalchemy>=2", "alembic>=1.13", "psycopg[binary]>=3.1",
                    "gunicorn>=22",
                ]

                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"
                """,
            "uv.lock": """
                version = 1

                [[package]]
                name = "gunicorn"
                version = "23.0.0"
                source = { registry = "https://pypi.org/simple" }
                """,
            "alembic.ini": "[alembic]\nscript_location = %(here)s/migrations\n",
            "migrations/env.py": "from alembic import context\n",
            "migrations/versions/0001_first.py": "revision = '0001'\n",
            "src/shop_api/__init__.py": """
                import os

                from flask import Flask

                from shop_api.views import bp


                def create_app():
                    app = Flask(__name__)
                    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
                    app.config["SECRET_KEY"] = os.environ.get("SHOP_SECRET_KEY")
                    app.config["LOG_LEVEL"] = os.getenv("SHOP_LOG_LEVEL", "info")
                    app.register_blueprint(bp)
                    return app
                """,
            "src/shop_api/views.py": """
                from flask import Blueprint, request

                bp = Blueprint("main", __name__)


                @bp.get("/ping")
                def ping():
                    return "pong"


                @bp.route("/healthz")
                def healthz():
                    return {"status": request.args.get("status", "ok")}
                """,
            "src/shop_api/wsgi.py": "from shop_api import create_app\n\napp = create_app()\n",
            "tests/test_app.py": 'from flask import Flask\n\napp = Flask("fixture")\n',
        },
    )


def fastapi_project(root: Path, server: str | None = "uvicorn[standard]>=0.30") -> Path:
    dependencies = ['"fastapi>=0.110"'] + ([f'"{server}"'] if server else [])
    return write_tree(
        root,
        {
            "pyproject.toml": f"""
                [project]
                name = "notes"
                version = "0.3.0"
                dependencies = [{", ".join(dependencies)}]
                """,
            "notes/__init__.py": "",
            "notes/main.py": """
                from fastapi import FastAPI

                app = FastAPI()


                @app.get("/health/")
                async def health():
                    return {"ok": True}


                @app.get("/status")
                async def status():
                    return {"version": "0.3.0"}
                """,
        },
    )


def run_init(*args: str) -> Any:
    return runner.invoke(cli.app, ["init", *args], terminal_width=200)


def comments(inventory: Path) -> str:
    """service.yml's comments as one line of prose (they are wrapped to the file's width)."""
    text = (inventory / SERVICE).read_text()
    return " ".join(line[2:] for line in text.splitlines() if line.startswith("# ")).replace(
        "  ", " "
    )


# --- every key is a documented variable of the right type, and the checks pass ------------


def documented_options() -> dict[str, dict[str, Any]]:
    """Every role variable meta/argument_specs.yml documents, with its spec."""
    options: dict[str, dict[str, Any]] = {}
    for specs in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry in yaml.safe_load(specs.read_text())["argument_specs"].values():
            options.update(entry.get("options") or {})
    return options


def ansible_inventory(inventory: Path, *args: str) -> dict[str, Any]:
    """What `ansible-inventory -i INVENTORY ARGS` prints, as JSON."""
    command = [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), *args]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def host_groups(inventory: Path, host: str) -> set[str]:
    """The groups ``host`` belongs to, directly or through a parent group."""
    listing = ansible_inventory(inventory, "--list")
    direct = {name for name, group in listing.items() if host in (group.get("hosts") or [])}
    found = set(direct)
    changed = True
    while changed:
        parents = {
            name
            for name, group in listing.items()
            if set(group.get("children") or []) & found and name not in found
        }
        found |= parents
        changed = bool(parents)
    return found


def assert_passes_the_inventory_checks(inventory: Path) -> dict[str, Any]:
    """What every command checks first (roles/bluegreen_service/tasks/check.yml and the
    argument specs), on the variables Ansible itself reads from the inventory."""
    text = (inventory / SERVICE).read_text()
    written = yaml.safe_load(text)
    options = documented_options()
    for key, value in written.items():
        assert key.startswith("bluegreen_"), key
        assert key in options, f"{key} is not documented in any meta/argument_specs.yml"
        expected = PYTHON_TYPES[options[key].get("type", "str")]
        assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), (
            f"{key}: {value!r} is not {options[key].get('type')}"
        )
    # Every value carries a comment saying where it came from, or that it is a placeholder.
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.split(":")[0] in written and not line.startswith(" "):
            assert lines[number - 1].startswith("# "), f"{line} has no comment above it"

    # Ansible's own reading, in its own process: loading the controller's inventory code
    # here would change how modules report warnings for every later test.
    groups = host_groups(inventory, "vm1")
    assert {"lb", "app"} <= groups
    hostvars = ansible_inventory(inventory, "--host", "vm1")
    assert hostvars["bluegreen_service_colours"] == ["blue", "green"]

    service_spec = yaml.safe_load(
        (ROOT / "roles/bluegreen_service/meta/argument_specs.yml").read_text()
    )["argument_specs"]["check"]["options"]
    params = {key: hostvars[key] for key in service_spec if key in hostvars}
    result = ArgumentSpecValidator(service_spec).validate(params)
    assert not result.error_messages, result.error_messages
    ports = hostvars["bluegreen_service_ports"]
    assert {"blue", "green"} <= set(ports) and ports["blue"] != ports["green"]
    assert SERVICE_NAME.fullmatch(hostvars["bluegreen_service_name"])
    assert smoke_route_problems(hostvars["bluegreen_service_smoke_routes"], "smoke") == []
    if "db" in groups:
        database_spec = yaml.safe_load(
            (ROOT / "roles/bluegreen_database/meta/argument_specs.yml").read_text()
        )["argument_specs"]["main"]["options"]
        params = {key: hostvars[key] for key in database_spec if key in hostvars}
        result = ArgumentSpecValidator(database_spec).validate(params)
        assert not result.error_messages, result.error_messages
    # vault.yml.example is not read as variables (it is a template to copy), yet is YAML.
    assert "vault_database_password" not in hostvars
    yaml.safe_load((inventory / VAULT_EXAMPLE).read_text())
    return written


# --- the fixture projects -----------------------------------------------------------------


def test_a_requirements_only_django_site_gets_a_tree_build_and_django_migrations(
    project: Path, tmp_path: Path
) -> None:
    site = wagtail_like_site(tmp_path / "mysite")

    out = run_init(str(site))

    assert out.exit_code == 0, out.output
    inventory = project / "inventories" / "mysite"
    values = assert_passes_the_inventory_checks(inventory)
    assert values["bluegreen_service_name"] == "mysite"
    assert values["bluegreen_service_start_command"] == (
        "gunicorn --bind {{ bluegreen_service_bind_address }}:${PORT} --workers 2 "
        "--no-control-socket --access-logfile - mysite.wsgi:application"
    )
    assert values["bluegreen_service_migrate_tool"] == "django"
    assert values["bluegreen_service_migrate_command"] == "python manage.py"
    assert values["bluegreen_service_health_path"] == "/"
    assert values["bluegreen_service_database_url"] == "sqlite:////var/lib/mysite/mysite.sqlite3"
    assert values["bluegreen_service_env"] == {
        "DJANGO_SETTINGS_MODULE": "mysite.settings.production"
    }
    text = comments(inventory)
    build = f"bluegreen build {site} --name mysite --version 1.0.0 --with gunicorn"
    assert build in text and build in out.output
    assert "Versions come from requirements.txt" in text
    assert "Dockerfile:1" in text
    assert "STATIC_ROOT = os.path.join(BASE_DIR, 'static') (mysite/settings/base.py:10)" in text
    assert "Placeholder: no health route found" in text
    assert "manage.py defaults to mysite.settings.dev (manage.py:6)" in text
    assert "hosts: {}" in (inventory / "hosts.yml").read_text()  # SQLite: no database host
    assert "bluegreen release -i inventories/mysite --version 1.0.0" in out.output


def test_a_flask_package_with_alembic_and_a_uv_lock(project: Path, tmp_path: Path) -> None:
    shop = flask_alembic_project(tmp_path / "shop")

    out = run_init(str(shop), "-o", str(tmp_path / "deploy" / "shop"))

    assert out.exit_code == 0, out.output
    inventory = tmp_path / "deploy" / "shop"
    values = assert_passes_the_inventory_checks(inventory)
    assert values["bluegreen_service_name"] == "shop-api"
    # gunicorn is a dependency, locked at 23: no --no-control-socket (27 and later).
    assert values["bluegreen_service_start_command"] == (
        "gunicorn --bind {{ bluegreen_service_bind_address }}:${PORT} --workers 2 "
        "--access-logfile - shop_api.wsgi:app"
    )
    assert values["bluegreen_service_migrate_tool"] == "alembic"
    assert values["bluegreen_service_migrate_command"] == "alembic -c alembic.ini"
    assert values["bluegreen_service_health_path"] == "/healthz"
    assert values["bluegreen_service_database_url"] == (
        "postgresql+psycopg://shop_api:{{ vault_database_password }}@127.0.0.1:5432/shop_api"
    )
    assert values["bluegreen_database_password"] == "{{ vault_database_password }}"
    assert values["bluegreen_service_secrets"] == {"SHOP_SECRET_KEY": "{{ vault_shop_secret_key }}"}
    text = comments(inventory)
    assert "Other candidates: /ping (src/shop_api/views.py:6)." in text
    assert "Versions come from uv.lock." in text
    assert f"bluegreen build {shop} --include alembic.ini --include migrations" in text
    assert "The service reads DATABASE_URL (src/shop_api/__init__.py:10)." in text
    assert "SHOP_LOG_LEVEL (src/shop_api/__init__.py:12)" in text
    assert "alembic.ini:2 (script_location)" in text
    vault = yaml.safe_load((inventory / VAULT_EXAMPLE).read_text())
    assert vault == {"vault_database_password": "change-me", "vault_shop_secret_key": "change-me"}
    assert "vm1:" in (inventory / "hosts.yml").read_text().split("db:")[1]


def test_a_fastapi_project_keeps_the_trailing_slash_of_its_health_route(
    project: Path, tmp_path: Path
) -> None:
    notes = fastapi_project(tmp_path / "notes")

    out = run_init(str(notes))

    assert out.exit_code == 0, out.output
    values = assert_passes_the_inventory_checks(project / "inventories" / "notes")
    assert values["bluegreen_service_health_path"] == "/health/"
    assert values["bluegreen_service_smoke_routes"] == [{"path": "/health/", "status": 200}]
    assert values["bluegreen_service_start_command"] == (
        "uvicorn --host {{ bluegreen_service_bind_address }} --port ${PORT} --workers 2 "
        "notes.main:app"
    )
    assert values["bluegreen_service_migrate_tool"] == ""
    assert values["bluegreen_service_database_url"] == ""
    assert "/status (notes/main.py:11)" in comments(project / "inventories/notes")


def test_an_asgi_project_without_a_server_is_built_with_uvicorn(tmp_path: Path) -> None:
    scan = scan_project(fastapi_project(tmp_path / "notes", server=None))

    assert scan.application.framework == "fastapi"
    assert scan.server.missing and scan.server.name == "uvicorn"
    assert build_command(scan, "../notes") == "bluegreen build ../notes --with uvicorn"


def test_a_project_with_nothing_recognisable_gets_placeholders_that_say_so(
    project: Path, tmp_path: Path
) -> None:
    thing = write_tree(tmp_path / "Odd Thing", {"README.md": "hello\n", "tool.py": "print(1)\n"})

    out = run_init(str(thing))

    assert out.exit_code == 0, out.output
    inventory = project / "inventories" / "odd-thing"
    values = assert_passes_the_inventory_checks(inventory)
    text = comments(inventory)
    assert values["bluegreen_service_start_command"].endswith(" odd_thing.wsgi:application")
    assert "Placeholder: no application object was found" in text
    assert values["bluegreen_service_health_path"] == "/"
    assert values["bluegreen_service_migrate_tool"] == ""
    assert "not recognised" in out.output
    assert "no pyproject.toml, setup.py or requirements.txt" in out.output
    assert "Nothing detected needs a secret yet." in (inventory / VAULT_EXAMPLE).read_text()


# --- writing ----------------------------------------------------------------------------


def test_an_existing_inventory_is_kept_unless_forced(project: Path, tmp_path: Path) -> None:
    site = wagtail_like_site(tmp_path / "mysite")
    inventory = project / "inventories" / "mysite"
    assert run_init(str(site)).exit_code == 0
    (inventory / "hosts.yml").write_text("# edited by the team\n")
    (inventory / "group_vars/all/vault.yml").write_text("vault_x: secret\n")

    refused = run_init(str(site))

    assert refused.exit_code == ExitCode.USAGE
    assert f"inventory {inventory} exists already: pass --force" in " ".join(refused.output.split())
    assert (inventory / "hosts.yml").read_text() == "# edited by the team\n"

    forced = run_init(str(site), "--force")

    assert forced.exit_code == 0, forced.output
    assert "ansible_host: 192.0.2.10" in (inventory / "hosts.yml").read_text()
    assert (inventory / "group_vars/all/vault.yml").read_text() == "vault_x: secret\n"
    assert not [p for p in inventory.parent.iterdir() if p.name.startswith(".")]


def test_nothing_is_written_on_an_error(project: Path, tmp_path: Path) -> None:
    site = wagtail_like_site(tmp_path / "mysite")

    out = run_init(str(site), "--name", "My Site")

    assert out.exit_code == ExitCode.USAGE
    assert "--name 'My Site' cannot name a service" in out.output
    assert list((project / "inventories").iterdir()) == []


def test_outside_a_project_the_default_folder_asks_for_o(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    site = wagtail_like_site(tmp_path / "mysite")

    out = run_init(str(site))

    assert out.exit_code == ExitCode.USAGE
    assert "pass -o DIR" in out.output


# --- the services released unchanged ----------------------------------------------------

IHATEMONEY = ROOT / "build" / "ihatemoney-7.2.1"
WAGTAILSITE = ROOT / "build" / "wagtailsite"


@pytest.mark.skipif(not IHATEMONEY.is_dir(), reason="build/ihatemoney-7.2.1 is not unpacked")
def test_ihatemoney_as_published(project: Path, tmp_path: Path) -> None:
    scan = scan_project(IHATEMONEY)

    assert scan.application.framework == "flask"
    assert scan.application.target.value == "ihatemoney.wsgi:application"
    assert scan.migrations.tool == "alembic"
    assert scan.migrations.command == "flask --app ihatemoney.wsgi db"
    assert [route.value for route in scan.health_routes] == ["/healthcheck"]
    assert scan.database.kind == "postgresql" and scan.database.driver_extra == "database"
    assert any("upgrade()" in note for note in scan.migrations.notes)
    out = run_init(str(IHATEMONEY), "-o", str(tmp_path / "ihatemoney"))
    assert out.exit_code == 0, out.output
    assert_passes_the_inventory_checks(tmp_path / "ihatemoney")
    assert "--with gunicorn --with psycopg2-binary" in out.output


@pytest.mark.skipif(not WAGTAILSITE.is_dir(), reason="build/wagtailsite is not generated")
def test_the_wagtail_site_as_generated(project: Path, tmp_path: Path) -> None:
    scan = scan_project(WAGTAILSITE)

    assert scan.application.framework == "django"
    assert scan.application.target.value == "wagtailsite.wsgi:application"
    assert scan.migrations.tool == "django"
    assert scan.health_routes == ()
    out = run_init(str(WAGTAILSITE), "-o", str(tmp_path / "wagtailsite"))
    assert out.exit_code == 0, out.output
    values = assert_passes_the_inventory_checks(tmp_path / "wagtailsite")
    assert values["bluegreen_service_health_path"] == "/"


@pytest.mark.parametrize(
    ("example", "inventory"), [("sampleapp", "lab"), ("djangoapp", "lab-django")]
)
def test_the_example_services_are_read_as_their_lab_inventories_describe_them(
    example: str, inventory: str
) -> None:
    scan = scan_project(ROOT / "examples" / example)
    described = yaml.safe_load(
        (ROOT / "inventories" / inventory / "group_vars/all/service.yml").read_text()
    )
    defaults = yaml.safe_load((ROOT / "roles/bluegreen_service/defaults/main.yml").read_text())
    start = (
        described.get("bluegreen_service_start_command")
        or defaults["bluegreen_service_start_command"]
    )

    assert start.endswith(f" {scan.application.target.value}")
    assert scan.migrations.tool == described["bluegreen_service_migrate_tool"]
    assert scan.migrations.command == described["bluegreen_service_migrate_command"]
    assert [route.value for route in scan.health_routes] == ["/health"]
    assert scan.database.kind == "postgresql"
