"""The Django example service: routes, headers, metrics, health and its migrations.

Each check runs in a fresh interpreter (Django settings are process-wide, and the sample
service registers the same metric names in this one), as the installed version given:
the harness stands in for the installed package's version before Django starts.
Real Django, real migrations, real SQLite files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("djangoapp")

from djangoapp.releases import Features, features_from_version, migration_dirs

HARNESS = """
import json, sys
import djangoapp.releases as releases
version, mode, *rest = sys.argv[1:]
releases.installed_version = lambda: version
if mode == "manage":
    from djangoapp.manage import main
    main(rest)
else:
    import django
    django.setup()
    from django.test import Client
    client = Client()
    answers = []
    for method, path, body in json.loads(rest[0]):
        if method == "POST":
            response = client.post(path, data=json.dumps(body), content_type="application/json")
        else:
            response = client.get(path)
        content = response.content.decode()
        is_json = response.get("Content-Type", "").startswith("application/json")
        answers.append({
            "status": response.status_code,
            "colour": response.get("X-Bluegreen-Colour"),
            "version": response.get("X-Bluegreen-Version"),
            "location": response.get("Location"),
            "body": json.loads(content) if is_json else content,
        })
    print(json.dumps(answers))
"""


def environment(database: Path, colour: str = "blue") -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"sqlite:///{database}",
        "BLUEGREEN_COLOUR": colour,
        "DJANGO_SECRET_KEY": "unit-test-only",
        "DJANGO_SETTINGS_MODULE": "djangoapp.settings",
    }


def run(version: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, version, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(version: str, *args: str, env: dict[str, str]) -> str:
    completed = run(version, "manage", *args, env=env)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def requests(
    version: str, calls: list[tuple[str, str, Any]], env: dict[str, str]
) -> list[dict[str, Any]]:
    completed = run(version, "requests", json.dumps(calls), env=env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def columns(database: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(database) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(notes)")]


@pytest.mark.parametrize(
    ("version", "dirs", "author"),
    [
        ("1.0.0", [], False),
        ("1.9.3+crash", [], False),
        ("2.0.0", ["release_2_0"], True),
        ("2.1.0", ["release_2_0"], True),
    ],
)
def test_release_line_decides_migrations_and_features(
    version: str, dirs: list[str], author: bool
) -> None:
    assert migration_dirs(version) == dirs
    assert features_from_version(version) == Features(author=author)


def test_each_version_sees_exactly_its_own_migrations(tmp_path: Path) -> None:
    env = environment(tmp_path / "app.db")
    assert manage("1.0.0", "showmigrations", "notes", env=env).split() == [
        "notes",
        "[",
        "]",
        "0001_initial",
    ]
    assert manage("2.0.0", "showmigrations", "notes", env=env).split()[-1] == "0002_note_author"


def test_models_match_the_migrations_of_each_version(tmp_path: Path) -> None:
    env = environment(tmp_path / "app.db")
    for version in ("1.0.0", "2.0.0"):
        assert "No changes detected" in manage(
            version, "makemigrations", "--check", "--dry-run", env=env
        )


def test_0002_is_an_expand_step_the_old_version_keeps_working_on(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    env = environment(database)
    manage("1.0.0", "migrate", "--noinput", env=env)
    [before] = requests("1.0.0", [("POST", "/notes", {"body": "before"})], env=env)
    assert before["status"] == 201
    [unmigrated] = requests("2.0.0", [("GET", "/health", None)], env=env)
    assert unmigrated["status"] == 503
    assert unmigrated["body"]["reason"] == "notes lacks column author; run djangoapp-manage migrate"

    manage("2.0.0", "migrate", "--noinput", env=env)
    assert columns(database) == ["id", "body", "created_at", "colour", "version", "author"]

    green = environment(database, colour="green")
    created, listed = requests(
        "2.0.0",
        [("POST", "/notes", {"body": "signed", "author": "ada"}), ("GET", "/notes", None)],
        env=green,
    )
    assert (created["status"], created["colour"], created["version"]) == (201, "green", "2.0.0")
    assert [(n["body"], n["author"]) for n in listed["body"]["notes"]] == [
        ("signed", "ada"),
        ("before", None),
    ]
    health, old_write, old_list = requests(
        "1.0.0",
        [("GET", "/health", None), ("POST", "/notes", {"body": "old"}), ("GET", "/notes", None)],
        env=env,
    )
    assert health["status"] == 200
    assert health["body"]["schema_revision"] == "0002_note_author"
    assert old_write["status"] == 201
    assert [n["body"] for n in old_list["body"]["notes"]] == ["old", "signed", "before"]
    assert all("author" not in n for n in old_list["body"]["notes"])


def test_0002_is_reversible(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    env = environment(database)
    manage("2.0.0", "migrate", "--noinput", env=env)
    manage("2.0.0", "migrate", "--noinput", "notes", "0001", env=env)
    assert columns(database) == ["id", "body", "created_at", "colour", "version"]


def test_routes_headers_and_metrics_follow_the_sample_service_format(tmp_path: Path) -> None:
    env = environment(tmp_path / "app.db", colour="green")
    manage("2.0.0", "migrate", "--noinput", env=env)
    index, created, missing, unknown, bad, limit, metrics = requests(
        "2.0.0",
        [
            ("GET", "/", None),
            ("POST", "/notes", {"body": "x"}),
            ("GET", "/notes/999", None),
            ("GET", "/no-such-route", None),
            ("POST", "/notes", {"body": "  "}),
            ("GET", "/notes?limit=0", None),
            ("GET", "/metrics", None),
        ],
        env=env,
    )
    assert index["body"] == {"service": "djangoapp", "version": "2.0.0", "colour": "green"}
    assert (index["colour"], index["version"]) == ("green", "2.0.0")
    assert created["location"] == f"/notes/{created['body']['id']}"
    assert missing["status"] == 404 and missing["body"]["detail"] == "note 999 does not exist"
    assert (unknown["status"], unknown["colour"]) == (404, "green")
    assert bad["status"] == 400
    assert limit["status"] == 400 and "limit must be an integer" in limit["body"]["detail"]
    text = metrics["body"]
    for route, status in [
        ("/", "200"),
        ("/notes", "201"),
        ("/notes/<int:note_id>", "404"),
        ("<unmatched>", "404"),
    ]:
        assert (
            f'http_request_duration_seconds_bucket{{le="0.005",method="'
            f'{"POST" if status == "201" else "GET"}",route="{route}",status="{status}"}}' in text
        )
    assert "http_requests_total{" in text
    assert 'djangoapp_build_info{colour="green",version="2.0.0"} 1.0' in text


def test_health_is_503_naming_the_missing_table(tmp_path: Path) -> None:
    [health] = requests("1.0.0", [("GET", "/health", None)], env=environment(tmp_path / "a.db"))
    assert health["status"] == 503
    assert health["body"]["reason"] == "table notes does not exist; run djangoapp-manage migrate"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("DATABASE_URL", "DATABASE_URL is not set"),
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY is not set"),
    ],
)
def test_missing_setting_is_named(tmp_path: Path, missing: str, message: str) -> None:
    env = environment(tmp_path / "app.db")
    del env[missing]
    completed = run("1.0.0", "manage", "check", env=env)
    assert completed.returncode != 0
    assert message in completed.stderr


def test_a_colour_that_is_not_blue_or_green_refuses_to_serve(tmp_path: Path) -> None:
    completed = run(
        "1.0.0",
        "requests",
        json.dumps([["GET", "/", None]]),
        env=environment(tmp_path / "app.db", colour="purple"),
    )
    assert completed.returncode != 0
    assert "BLUEGREEN_COLOUR must be blue or green, got 'purple'" in completed.stderr
