"""The Django example service (examples/djangoapp) released for real, on PostgreSQL.

Nothing in the roles is Django-specific beyond bluegreen_service_migrate_tool: the release
plans and applies the migrations through Django's own commands (djangoapp-manage, the
installed manage.py) under the migration lock, health-gates, switches and analyses the
golden signals from the service's /metrics.

Django on SQLite is released by test_wagtail.py, with a site nobody on this project wrote
(its first release, an upgrade with migrations, rollbacks with and without data): this
example's SQLite release added nothing that one does not show, for two more releases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from conftest import (
    DJANGO,
    DJANGO_URL,
    ansible,
    bluegreen,
    ensure_live,
    live,
    request,
    shell,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("django_lab")]

APP = "djangoapp"
JOURNAL = f"/var/lib/bluegreen/{APP}/journal.jsonl"
PORTS = {"blue": 8001, "green": 8002}
INITIAL = "notes.0001_initial"
AUTHOR = "notes.0002_note_author"


@dataclass(frozen=True)
class DjangoLab:
    inventory: str
    url: str
    host: str


POSTGRESQL = DjangoLab(DJANGO, DJANGO_URL, "django1")


def columns(lab: DjangoLab) -> list[str]:
    query = (
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_name = 'notes'"
    )
    command = f'cd / && runuser -u postgres -- psql -d {APP} -Atc "{query}"'
    result = shell(lab.host, command, lab.inventory)
    assert result.get("rc") == 0, result
    return result["stdout"].strip().split(",")


def migrator(lab: DjangoLab, version: str, **options: object) -> dict:
    """migration_runner from the installed `version`, with the blue colour's environment."""
    args = {
        "name": APP,
        "tool": "django",
        "chdir": f"/opt/{APP}/releases/{version}",
        "command": [f"{APP}-manage"],
        "env_file": f"/etc/{APP}/blue.env",
        "state": "current",
    } | options
    return ansible(lab.host, "migration_runner", args, lab.inventory, become_user=APP)


def schema_back_at_0001(lab: DjangoLab) -> None:
    """Undo 0002 with Django's own reverse migration, if an earlier run applied it."""
    if "author" not in columns(lab):
        return
    undone = migrator(
        lab, "2.0.0", state="downgraded", target=INITIAL, allow_breaking=True, lock_timeout=30
    )
    assert not undone.get("failed"), undone
    assert undone["current"] == INITIAL


def journal(lab: DjangoLab, release_id: str) -> dict[str, dict]:
    lines = shell(lab.host, f"cat {JOURNAL}", lab.inventory)["stdout"].splitlines()
    entries = [json.loads(line) for line in lines]
    return {e["step"]: e for e in entries if e["release_id"] == release_id}


@pytest.mark.parametrize("lab", [POSTGRESQL], ids=["postgresql"])
def test_django_release_1_0_0_then_2_0_0_applies_its_expand_migration(lab: DjangoLab) -> None:
    ensure_live("1.0.0", inventory=lab.inventory)
    schema_back_at_0001(lab)
    old = live(lab.url)
    written = request(lab.url, "/notes", {"body": "written by 1.0.0"})
    assert (written.status, written.version) == (201, "1.0.0")

    released = bluegreen("release", "--version", "2.0.0", "-i", lab.inventory)

    assert released.exit_code == 0, released.report
    new = live(lab.url)
    assert (new.status, new.version) == (200, "2.0.0")
    assert new.colour != old.colour
    assert columns(lab)[-1] == "author"
    steps = journal(lab, released.report["custom_stats"]["bluegreen_release_id"])
    migration = steps["deploy"]["evidence"]["migration"]
    assert (migration["previous"], migration["current"], migration["applied"]) == (
        INITIAL,
        AUTHOR,
        [AUTHOR],
    )
    # The analysis scraped the Django service's /metrics (the sample service's format).
    signals = steps["analysis"]["evidence"]["signals"]
    assert signals["targets_down"]["verdict"] == "ok", signals["targets_down"]
    assert signals["traffic"]["verdict"] in ("ok", "inconclusive"), signals["traffic"]

    created = request(lab.url, "/notes", {"body": "signed", "author": "ada"})
    assert (created.status, created.version) == (201, "2.0.0")
    note = json.loads(request(lab.url, f"/notes/{json.loads(created.body)['id']}").body)
    assert note["author"] == "ada"
    kept = json.loads(request(lab.url, f"/notes/{json.loads(written.body)['id']}").body)
    assert (kept["body"], kept["author"]) == ("written by 1.0.0", None)
    # The old colour stays warm for a rollback and works on the new schema.
    old_health = shell(
        lab.host, f"curl -s http://127.0.0.1:{PORTS[old.colour]}/health", lab.inventory
    )
    health = json.loads(old_health["stdout"])
    assert (health["status"], health["version"], health["schema_revision"]) == (
        "ok",
        "1.0.0",
        "0002_note_author",
    )
    assert migrator(lab, "2.0.0")["current"] == AUTHOR
