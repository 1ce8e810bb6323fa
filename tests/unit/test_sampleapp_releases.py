"""The sample service's release history: which migrations and features each version has.

Real Alembic against SQLite files; needs the example installed in the venv.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from flask.testing import FlaskClient
from sampleapp.app import Settings, create_app
from sampleapp.migrate import alembic_config
from sampleapp.releases import Features, features_from_version, version_locations
from sqlalchemy.exc import OperationalError


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def migrated(tmp_path: Path, version: str, name: str = "app.db") -> str:
    url = sqlite_url(tmp_path / name)
    command.upgrade(alembic_config(url, version=version), "head")
    return url


def client(url: str, version: str, colour: str = "blue") -> FlaskClient:
    app = create_app(Settings(url, colour, version))
    app.testing = True
    return app.test_client()


def schema(url: str) -> tuple[list[str], str | None]:
    """The columns of notes and the recorded revision."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            columns = [column["name"] for column in sa.inspect(conn).get_columns("notes")]
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
    return columns, revision


@pytest.mark.parametrize(
    ("version", "locations", "head"),
    [
        ("1.0.0", ["versions"], "0001"),
        ("1.4.2+crash", ["versions"], "0001"),
        ("2.0.0", ["versions", "release_2_0"], "0002"),
        ("2.0.1+crash", ["versions", "release_2_0"], "0002"),
        ("2.0.4+slow1500", ["versions", "release_2_0"], "0002"),
        ("2.0.5+migfail", ["versions", "release_2_0", "fault_migfail"], "0003"),
        ("2.0.6+breaking", ["versions", "release_2_0", "fault_breaking"], "0003"),
        ("3.1.0", ["versions", "release_2_0"], "0002"),
    ],
)
def test_each_version_sees_exactly_its_own_migrations(
    version: str, locations: list[str], head: str
) -> None:
    assert version_locations(version) == locations
    assert ScriptDirectory.from_config(alembic_config(version=version)).get_heads() == [head]


def test_a_version_that_is_not_pep440_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match="'latest' is not a PEP 440 version"):
        version_locations("latest")


@pytest.mark.parametrize(
    ("version", "author"),
    [("1.0.0", False), ("2.0.0", True), ("2.0.5+migfail", True), ("2.0.6+breaking", False)],
)
def test_release_2_writes_author_except_the_build_that_drops_it(version: str, author: bool) -> None:
    assert features_from_version(version) == Features(author=author)


def test_0002_is_an_expand_step_the_old_version_keeps_working_on(tmp_path: Path) -> None:
    url = migrated(tmp_path, "1.0.0")
    assert schema(url) == (["id", "body", "created_at", "colour", "version"], "0001")
    old = client(url, "1.0.0")
    assert old.post("/notes", json={"body": "before"}).status_code == 201

    command.upgrade(alembic_config(url, version="2.0.0"), "head")
    assert schema(url) == (["id", "body", "created_at", "colour", "version", "author"], "0002")

    new = client(url, "2.0.0", colour="green")
    created = new.post("/notes", json={"body": "with author", "author": "ada"})
    assert created.status_code == 201
    assert new.get(created.headers["Location"]).json["author"] == "ada"
    assert old.get("/health").status_code == 200
    assert old.post("/notes", json={"body": "old colour, new schema"}).status_code == 201
    listed = old.get("/notes").json["notes"]
    assert [note["body"] for note in listed] == ["old colour, new schema", "with author", "before"]
    assert all("author" not in note for note in listed)
    assert [note.get("author") for note in new.get("/notes").json["notes"]] == [None, "ada", None]


def test_0002_downgrades_for_real(tmp_path: Path) -> None:
    url = migrated(tmp_path, "2.0.0")
    command.downgrade(alembic_config(url, version="2.0.0"), "0001")
    assert schema(url) == (["id", "body", "created_at", "colour", "version"], "0001")


def test_release_2_is_unhealthy_until_its_migration_ran(tmp_path: Path) -> None:
    url = migrated(tmp_path, "1.0.0")
    response = client(url, "2.0.0").get("/health")
    assert response.status_code == 503
    assert response.json["reason"] == "notes lacks column author; run sampleapp-migrate"


def test_release_2_refuses_an_author_that_is_not_text(tmp_path: Path) -> None:
    url = migrated(tmp_path, "2.0.0")
    response = client(url, "2.0.0").post("/notes", json={"body": "x", "author": 7})
    assert response.status_code == 400
    assert client(url, "2.0.0").get("/notes").json["notes"] == []


def test_migfail_on_sqlite_leaves_its_column_behind_at_the_old_revision(tmp_path: Path) -> None:
    url = migrated(tmp_path, "2.0.0")
    with pytest.raises(OperationalError, match="no such column: bodyy"):
        command.upgrade(alembic_config(url, version="2.0.5+migfail"), "head")
    columns, revision = schema(url)
    assert revision == "0002"
    assert columns[-1] == "word_count"
    # Half-applied: running it again cannot succeed until the snapshot is restored.
    with pytest.raises(OperationalError, match="duplicate column name: word_count"):
        command.upgrade(alembic_config(url, version="2.0.5+migfail"), "head")


def test_breaking_build_drops_author_and_runs_without_it(tmp_path: Path) -> None:
    url = migrated(tmp_path, "2.0.6+breaking")
    assert schema(url) == (["id", "body", "created_at", "colour", "version"], "0003")
    breaking = client(url, "2.0.6+breaking")
    assert breaking.post("/notes", json={"body": "no author"}).status_code == 201
    assert client(url, "2.0.0").get("/health").json["reason"] == (
        "notes lacks column author; run sampleapp-migrate"
    )
