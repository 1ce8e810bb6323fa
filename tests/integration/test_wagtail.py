"""A Wagtail site nobody on this project wrote, released unchanged on an empty database.

The site is what `wagtail start` makes from PyPI's wagtail 7.0 (Django 5.2, a
requirements file and nothing else; about 180 migrations from Django, Wagtail and
django-taggit, some of which inspect tables an earlier migration of the same plan
creates, so their SQL cannot be rendered in advance). `make wagtail-artifacts` builds it
as a tree artifact; inventories/lab-wagtail runs it as a second service on the container
of the Django single-host lab, with what it needs offered from the outside (a settings
module in /etc, gunicorn added at build time).

Before: the first release planned each migration in its own process (about 225 s before
the SQLite window and 263 s inside it) and was refused for "unknown SQL".
"""

from __future__ import annotations

import json

import pytest
from conftest import DJANGO_SINGLE, ROOT, bluegreen, shell

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("django"),
    pytest.mark.usefixtures("django_lab"),
]

INVENTORY = "lab-wagtail"
HOST = "django-single1"
APP = "wagtailsite"
PUBLIC = 8090
DATABASE = f"/var/lib/{APP}/wagtail.db"


def on_host(command: str) -> str:
    result = shell(HOST, command, DJANGO_SINGLE)
    assert result.get("rc") == 0, result
    return result["stdout"]


def clear_service() -> None:
    """Remove every trace of the site from the host and the controller."""
    on_host(
        f"systemctl stop '{APP}@blue' '{APP}@green' 2>/dev/null; "
        f"systemctl disable '{APP}@blue' '{APP}@green' 2>/dev/null; "
        f"rm -rf /opt/{APP} /var/lib/{APP} /etc/{APP} /var/lib/bluegreen/{APP} "
        f"/var/www/bluegreen/{APP} /etc/nginx/conf.d/{APP}.conf /etc/nginx/bluegreen/{APP}.* "
        f"/etc/systemd/system/{APP}@.service; "
        "systemctl daemon-reload; nginx -t -q && systemctl reload nginx; true"
    )
    (ROOT / "state" / "journal" / INVENTORY / f"{APP}.jsonl").unlink(missing_ok=True)


def journal(release_id: str) -> dict[str, dict]:
    lines = on_host(f"cat /var/lib/bluegreen/{APP}/journal.jsonl").splitlines()
    records = [json.loads(line) for line in lines]
    return {r["step"]: r for r in records if r["release_id"] == release_id}


def page(path: str = "/") -> tuple[int, str]:
    out = on_host(f"curl -s -w '\\n%{{http_code}}' --max-time 10 http://127.0.0.1:{PUBLIC}{path}")
    body, _, status = out.rpartition("\n")
    return int(status), body


def applied_migrations() -> int:
    query = "SELECT count(*) FROM django_migrations"
    return int(on_host(f'sqlite3 {DATABASE} "{query}"').strip())


def test_wagtail_site_first_release_on_an_empty_database_is_planned_and_applied() -> None:
    for version in ("1.0.0", "1.0.1"):
        artifact = ROOT / "artifacts" / f"{APP}-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make wagtail-artifacts` first")
    clear_service()

    first = bluegreen("release", "--version", "1.0.0", "-i", INVENTORY, timeout=1200)

    assert first.exit_code == 0, first.report
    assert first.outcome == "released"
    assert "there is no previous release to roll back to" in first.message, first.message
    steps = journal(first.report["custom_stats"]["bluegreen_release_id"])
    migration = steps["deploy"]["evidence"]["migration"]
    assert migration["previous"].endswith(".zero"), migration["previous"]
    # django_migrations also records the migrations that squashed ones replace.
    assert applied_migrations() >= len(migration["applied"]) > 150
    assert (
        "wagtailcore.0087_alter_grouppagepermission_unique_together_and_more"
        in (migration["applied"])
    )
    status, body = page("/")
    assert status == 200 and "Welcome to your new Wagtail site" in body
    assert page("/admin/login/")[0] == 200
    assert on_host(f"test -e /var/www/bluegreen/{APP}/maintenance.on && echo on || echo off") == (
        "off"
    )

    # The next release has nothing to migrate: no window, the site keeps answering.
    second = bluegreen("release", "--version", "1.0.1", "-i", INVENTORY, timeout=1200)
    assert second.exit_code == 0, second.report
    steps = journal(second.report["custom_stats"]["bluegreen_release_id"])
    assert steps["deploy"]["evidence"]["migration"]["applied"] == []
    assert page("/")[0] == 200
