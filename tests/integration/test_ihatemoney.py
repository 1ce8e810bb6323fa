"""I Hate Money, a Flask + Alembic service nobody on this project wrote, released unchanged,
in the container runtime.

`make ihatemoney-artifacts` builds 7.1.1 and 7.2.1 from their published sdists with
`bluegreen build --image` (plus gunicorn and psycopg2-binary, which it does not require):
each artifact carries an image made with the Dockerfile bluegreen generates.
examples/third-party/ihatemoney/inventory-vars.yml runs it as a second service on the Django
lab's container, on that container's PostgreSQL, with what it needs offered from the
outside (examples/third-party/ihatemoney/README.md); this test runs it as one Compose
project per colour (bluegreen_service_runtime: container), its migrations in one-off
containers of the new image. 7.2.1 ships one real migration, c941aaca38c2, which drops
`transaction.remote_addr`: a contract step that 7.1.1's writes still need.

One test, in order, because each release builds on the last, all under steady user
traffic: the first release on an empty database; the breaking release refused, then
accepted; a rollback with data (the snapshot taken before the migration); the same
release again, and a plain rollback, which leaves the schema where it is; last, the same
version with a fault injected from the outside (a WSGI wrapper the inventory adds, which
answers 500 to 3 requests in 10 once a worker served 50), which the post-switch analysis
rolls back by itself.
"""

from __future__ import annotations

import pytest
from conftest import DJANGO, ROOT, bluegreen
from side_service import SideService, judged_on_load_balancer_signals

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("django"),
    pytest.mark.usefixtures("django_lab"),
]

# ihatemoney's own application, wrapped: with BLUEGREEN_TEST_FAULT=errors30 (set by the
# test for one release) a worker answers 500 to 3 requests in 10 once it served 50 (the
# health path aside), as the sample's faulty builds do. The service's code is not touched.
FAULT_MODULE = """\
import itertools
import os

from ihatemoney_bluegreen import application as _application

_served = itertools.count(1)
_FAULT = os.environ.get("BLUEGREEN_TEST_FAULT", "")


def application(environ, start_response):
    if _FAULT != "errors30" or environ.get("PATH_INFO") == "/healthcheck":
        return _application(environ, start_response)
    number = next(_served)
    if number > 50 and number % 10 < 3:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"fault injected by the test\\n"]
    return _application(environ, start_response)
"""
SERVICE = SideService(
    "ihatemoney",
    DJANGO,
    "django1",
    public_port=8091,
    postgresql="ihatemoney",
    changes={
        "bluegreen_service_runtime": "container",
        "bluegreen_service_artifact_dir": "{{ playbook_dir }}/../artifacts/image",
        "bluegreen_service_files": {"bluegreen_fault.py": FAULT_MODULE},
        "bluegreen_service_env": {
            "BLUEGREEN_TEST_FAULT": "{{ lookup('env', 'BLUEGREEN_TEST_FAULT', default='') }}"
        },
        "bluegreen_service_start_command": (
            "gunicorn --bind {{ bluegreen_service_bind_address }}:${PORT} --workers 2 "
            "--no-control-socket --access-logfile - bluegreen_fault:application"
        ),
    },
)
APP = SERVICE.name
on_host = SERVICE.on_host
V1, V2 = "7.1.1", "7.2.1"
V1_HEAD, V2_HEAD = "06884b17c50f", "c941aaca38c2"


def sql(query: str) -> str:
    return on_host(f'runuser -u postgres -- psql -d {APP} -Atc "{query}"').strip()


def revision() -> str:
    return sql("SELECT version_num FROM alembic_version")


def has_remote_addr() -> bool:
    return (
        sql(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'transaction' AND column_name = 'remote_addr'"
        )
        == "1"
    )


def answer(path: str) -> int:
    url = f"http://127.0.0.1:{SERVICE.public_port}{path}"
    return int(on_host(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {url}"))


def create_project(name: str) -> int:
    """A write through nginx: the project and its history row (Continuum's transaction)."""
    url = f"http://127.0.0.1:{SERVICE.public_port}/api/projects"
    form = f"name={name}&id={name}&password=secret-{name}&contact_email={name}@example.org"
    return int(on_host(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 -d '{form}' {url}"))


def test_ihatemoney_releases_migrates_and_rolls_back_with_and_without_data_and_by_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for version in (V1, V2):
        artifact = ROOT / "artifacts" / "image" / f"{APP}-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make ihatemoney-artifacts` first")
    SERVICE.clear()
    SERVICE.traffic()
    try:
        run_releases(monkeypatch)
    finally:
        SERVICE.stop_traffic()


def run_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first release, on an empty database: its 12 revisions are the first schema
    # (one of them, a data migration, cannot be rendered offline; nothing depends on it).
    first = bluegreen("release", "--version", V1, "-i", SERVICE.inventory, timeout=1200)
    assert first.exit_code == 0, first.report
    assert first.outcome == "released", first.message
    steps = SERVICE.journal(first.report["custom_stats"]["bluegreen_release_id"])
    migration = steps["deploy"]["evidence"]["migration"]
    assert len(migration["applied"]) == 12 and revision() == V1_HEAD, migration
    assert answer("/") == 200 and answer("/api/currencies") == 200
    assert create_project("before") == 201 and has_remote_addr()

    # 7.2.1 drops a column 7.1.1 writes: refused, naming it, and nothing changed.
    refused = bluegreen("release", "--version", V2, "-i", SERVICE.inventory, timeout=1200)
    assert refused.exit_code == 3, refused.report
    assert "drop column transaction.remote_addr" in refused.message, refused.message
    assert "Nothing was applied" in refused.message
    assert revision() == V1_HEAD and has_remote_addr() and answer("/") == 200

    # Accepted (users only read meanwhile), judged on the load balancer's signals.
    second = bluegreen(
        "release", "--version", V2, "--allow-breaking-migrations", "-i", SERVICE.inventory,
        timeout=1200,
    )  # fmt: skip
    assert second.exit_code == 0, second.report
    assert second.outcome == "released", second.message
    steps = SERVICE.journal(second.report["custom_stats"]["bluegreen_release_id"])
    assert steps["deploy"]["evidence"]["migration"]["applied"] == [V2_HEAD]
    judged_on_load_balancer_signals(steps)
    assert revision() == V2_HEAD and not has_remote_addr()
    assert create_project("after") == 201

    # With data, from the snapshot taken before the migration, losing the writes since
    # (accepted here); 7.1.1 serves and writes again. Not the downgrade: ihatemoney's
    # downgrade() leaves logging_preference a VARCHAR where 7.1.1's schema has an enum,
    # and its upgrade() then fails to cast it back (examples/third-party/ihatemoney).
    with_data = bluegreen(
        "rollback", "--with-data", "--method", "restore", "--accept-data-loss",
        "-i", SERVICE.inventory, timeout=900,
    )  # fmt: skip
    assert with_data.exit_code == 0, with_data.report
    assert "restore" in with_data.message, with_data.message
    assert revision() == V1_HEAD and has_remote_addr()
    assert sql("SELECT count(*) FROM project WHERE id = 'after'") == "0"
    assert create_project("restored") == 201 and answer("/") == 200

    # The same release again, then a plain rollback: traffic only, the schema stays at
    # 7.2.1's, on which 7.1.1 still reads (its writes need the dropped column).
    again = bluegreen(
        "release", "--version", V2, "--allow-breaking-migrations", "-i", SERVICE.inventory,
        timeout=1200,
    )  # fmt: skip
    assert again.exit_code == 0 and again.outcome == "released", again.report
    back = bluegreen("rollback", "-i", SERVICE.inventory, timeout=600)
    assert back.exit_code == 0, back.report
    assert revision() == V2_HEAD
    assert answer("/") == 200 and answer("/api/currencies") == 200

    # The colours are Compose projects of the images the artifacts carry.
    for colour in ("blue", "green"):
        image = on_host(
            f"docker ps --filter label=com.docker.compose.project={APP}-{colour} "
            "--format '{{.Image}}'"
        ).strip()
        assert image in (f"{APP}:{V1}", f"{APP}:{V2}"), (colour, image)

    # 7.2.1 again, with a fault from the outside: live, then its error rate goes bad
    # under the users' traffic, and the post-switch analysis sends traffic back by itself.
    monkeypatch.setenv("BLUEGREEN_TEST_FAULT", "errors30")
    faulty = bluegreen("release", "--version", V2, "-i", SERVICE.inventory, timeout=1200)
    assert faulty.exit_code == 4, faulty.report
    assert faulty.outcome == "rolled_back", faulty.message
    assert "error_rate" in faulty.message, faulty.message
    steps = SERVICE.journal(faulty.report["custom_stats"]["bluegreen_release_id"])
    assert steps["analysis"]["outcome"] == "failed", steps["analysis"]
    assert steps["rollback"]["outcome"] == "ok", steps["rollback"]
    assert steps["rollback"]["evidence"]["bad_version"] == V2, steps["rollback"]
    assert answer("/") == 200 and answer("/api/currencies") == 200
