"""The sample service: routes, headers, metrics, health and fault injection.

Needs the example installed in the venv: ``pip install -e examples/sampleapp``.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Iterator
from importlib.metadata import version as distribution_version
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sampleapp.app import (
    ConfigError,
    InjectedCrash,
    Settings,
    create_app,
    settings_from_env,
)
from sampleapp.faults import Fault, fault_from_version, local_label
from sampleapp.migrate import alembic_config
from sampleapp.migrate import main as migrate_main


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database at the schema of release 2.0 (0002), on which 1.0.0 and 2.0.0 both run."""
    url = sqlite_url(tmp_path / "app.db")
    command.upgrade(alembic_config(url, version="2.0.0"), "head")
    return url


def make_client(
    database_url: str,
    colour: str = "green",
    version: str = "1.0.0",
    fault: Fault | None = None,
    rng: random.Random | None = None,
) -> FlaskClient:
    app = create_app(Settings(database_url, colour, version), fault=fault, rng=rng)
    app.testing = True
    return app.test_client()


@pytest.fixture
def client(database_url: str) -> Iterator[FlaskClient]:
    yield make_client(database_url)


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_index_names_service_version_and_colour(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.json == {"service": "sampleapp", "version": "1.0.0", "colour": "green"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/health", 200),
        ("GET", "/metrics", 200),
        ("GET", "/notes", 200),
        ("GET", "/notes/12345", 404),
        ("GET", "/no-such-route", 404),
        ("POST", "/notes", 400),
    ],
)
def test_every_response_says_which_colour_and_version_answered(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["X-Bluegreen-Colour"] == "green"
    assert response.headers["X-Bluegreen-Version"] == "1.0.0"


def test_injected_errors_still_carry_colour_headers(database_url: str) -> None:
    client = make_client(database_url, colour="blue", version="2.0.2+http500")
    response = client.get("/")
    assert response.status_code == 500
    assert response.headers["X-Bluegreen-Colour"] == "blue"
    assert response.headers["X-Bluegreen-Version"] == "2.0.2+http500"


def test_settings_take_the_version_from_the_installed_package(tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqlite_url(tmp_path / "x.db"), "BLUEGREEN_COLOUR": "Blue"}
    settings = settings_from_env(env)
    assert settings.version == distribution_version("sampleapp")
    assert settings.colour == "blue"


def test_a_bare_service_names_no_colour_or_version_and_serves_no_metrics(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "BLUEGREEN_COLOUR": "green", "SAMPLEAPP_BARE": "1"}
    settings = settings_from_env(env)
    assert settings.bare
    app = create_app(settings)
    app.testing = True
    client = app.test_client()

    answer = client.get("/health")
    assert answer.status_code == 200
    assert "X-Bluegreen-Colour" not in answer.headers
    assert "X-Bluegreen-Version" not in answer.headers
    assert client.get("/metrics").status_code == 404
    assert not settings_from_env({**env, "SAMPLEAPP_BARE": ""}).bare


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"BLUEGREEN_COLOUR": "blue"}, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "BLUEGREEN_COLOUR must be blue or green"),
        ({"DATABASE_URL": "sqlite:///x.db", "BLUEGREEN_COLOUR": "red"}, "got 'red'"),
    ],
)
def test_settings_refuse_an_incomplete_environment(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        settings_from_env(env)


def test_created_note_can_be_read_back_with_writer_colour_and_version(
    client: FlaskClient,
) -> None:
    created = client.post("/notes", json={"body": "hello"})
    assert created.status_code == 201
    note_id = created.json["id"]
    assert created.headers["Location"] == f"/notes/{note_id}"

    note = client.get(f"/notes/{note_id}").json
    assert note["body"] == "hello"
    assert note["colour"] == "green"
    assert note["version"] == "1.0.0"
    assert note["created_at"].endswith("+00:00")


def test_notes_list_is_newest_first_and_limited(database_url: str) -> None:
    blue = make_client(database_url, colour="blue", version="1.0.0")
    green = make_client(database_url, colour="green", version="2.0.0")
    for i in range(3):
        blue.post("/notes", json={"body": f"blue {i}"})
    green.post("/notes", json={"body": "green 0"})

    listed = blue.get("/notes?limit=2").json["notes"]
    assert [n["body"] for n in listed] == ["green 0", "blue 2"]
    assert [(n["colour"], n["version"]) for n in listed] == [
        ("green", "2.0.0"),
        ("blue", "1.0.0"),
    ]
    assert len(blue.get("/notes").json["notes"]) == 4


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001"])
def test_notes_list_rejects_a_bad_limit(client: FlaskClient, limit: str) -> None:
    response = client.get(f"/notes?limit={limit}")
    assert response.status_code == 400
    assert "limit must be an integer" in response.json["detail"]


def work_bucket(le: str) -> float:
    labels = {"method": "GET", "route": "/work", "status": "200", "le": le}
    return REGISTRY.get_sample_value("http_request_duration_seconds_bucket", labels) or 0.0


def test_work_answers_after_the_milliseconds_asked_and_its_histogram_has_them_to_the_ms(
    client: FlaskClient,
) -> None:
    below, at_most = work_bucket("0.029"), work_bucket("0.1")
    started = time.perf_counter()
    response = client.get("/work?ms=30")
    assert time.perf_counter() - started >= 0.030
    assert response.status_code == 200
    assert response.json == {"worked_ms": 30, "colour": "green"}
    assert work_bucket("0.029") == below
    assert work_bucket("0.1") == at_most + 1


@pytest.mark.parametrize("ms", [None, "-1", "abc", "2001", "1.5"])
def test_work_refuses_a_length_it_cannot_take(client: FlaskClient, ms: str | None) -> None:
    response = client.get("/work" if ms is None else f"/work?ms={ms}")
    assert response.status_code == 400
    assert "ms must be an integer from 0 to 2000" in response.json["detail"]


@pytest.mark.parametrize("payload", [None, {}, {"body": ""}, {"body": "  "}, {"body": 3}, ["x"]])
def test_note_without_a_text_body_is_refused_and_not_stored(
    client: FlaskClient, payload: object
) -> None:
    response = client.post("/notes", json=payload)
    assert response.status_code == 400
    assert client.get("/notes").json["notes"] == []


def test_unknown_note_is_404(client: FlaskClient) -> None:
    response = client.get("/notes/999")
    assert response.status_code == 404
    assert response.json["detail"] == "note 999 does not exist"


def test_health_reports_database_and_schema_revision(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["database"] == "ok"
    assert response.json["schema_revision"] == "0002"


def test_health_is_503_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    client = make_client(sqlite_url(tmp_path / "missing-dir" / "app.db"))
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["database"] == "error"
    assert "unable to open database file" in response.json["reason"]


def test_health_is_503_when_the_notes_table_is_missing(tmp_path: Path) -> None:
    client = make_client(sqlite_url(tmp_path / "unmigrated.db"))
    response = client.get("/health")
    assert response.status_code == 503
    assert "table notes does not exist" in response.json["reason"]


def test_notes_answer_503_when_the_database_is_gone(tmp_path: Path) -> None:
    client = make_client(sqlite_url(tmp_path / "missing-dir" / "app.db"))
    response = client.post("/notes", json={"body": "lost"})
    assert response.status_code == 503
    assert response.json["error"] == "database unavailable"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(database_url: str) -> None:
    client = make_client(database_url)
    engine = client.application.extensions["sampleapp.engine"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_metrics_are_labelled_by_url_rule_not_raw_path(client: FlaskClient) -> None:
    note_id = client.post("/notes", json={"body": "m"}).json["id"]
    before_rule = requests_counted("GET", "/notes/<int:note_id>", "200")
    before_unmatched = requests_counted("GET", "<unmatched>", "404")

    client.get(f"/notes/{note_id}")
    client.get("/definitely/not/a/route")

    assert requests_counted("GET", "/notes/<int:note_id>", "200") == before_rule + 1
    assert requests_counted("GET", "<unmatched>", "404") == before_unmatched + 1
    assert requests_counted("GET", f"/notes/{note_id}", "200") == 0


def test_metrics_exposition_has_latency_histogram_and_process_metrics(
    client: FlaskClient,
) -> None:
    client.get("/")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    for bucket in ("0.005", "0.25", "2.5", "10.0", "+Inf"):
        assert (
            f'http_request_duration_seconds_bucket{{le="{bucket}",method="GET",route="/",'
            f'status="200"}}' in text
        )
    assert "http_requests_total{" in text
    assert "process_cpu_seconds_total" in text
    assert 'sampleapp_build_info{colour="green",version="1.0.0"} 1.0' in text


def test_sampleapp_migrate_reads_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", sqlite_url(db))
    migrate_main([])
    engine = sa.create_engine(sqlite_url(db))
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("notes")
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0001"
    engine.dispose()


@pytest.mark.parametrize(
    ("version", "fault"),
    [
        ("1.0.0", Fault()),
        ("2.0.1+crash", Fault(crash=True)),
        ("2.0.2+http500", Fault(http500=True)),
        ("2.0.3+errors30", Fault(error_rate=0.3)),
        ("2.0.4+slow1500", Fault(latency_seconds=1.5)),
        ("2.0.5+slow250.errors5", Fault(error_rate=0.05, latency_seconds=0.25)),
        ("2.0.6+HTTP500_errors100", Fault(http500=True, error_rate=1.0)),
        ("2.0.7+errors250", Fault(error_rate=1.0)),
        ("2.0.8+ubuntu1", Fault()),
        ("2.0.9+slow", Fault()),
        ("2.0.3+errors30.after25", Fault(error_rate=0.3, after_seconds=25)),
        ("2.0.3+errors30.after200req", Fault(error_rate=0.3, after_requests=200)),
        ("2.0.7+cpu20.after200req", Fault(cpu_ms_per_request=20, after_requests=200)),
        ("2.0.8+leak1", Fault(leak_mb_per_request=1)),
        ("2.0.9+tracebacks", Fault(tracebacks=True)),
        ("2.0.10+lag60", Fault(lag=0.6)),
    ],
)
def test_fault_is_parsed_from_the_local_version_label(version: str, fault: Fault) -> None:
    assert fault_from_version(version) == fault


def test_delayed_fault_spares_requests_until_the_delay_has_passed(database_url: str) -> None:
    client = make_client(database_url, version="2.0.3+errors100.after3600")
    assert client.get("/").status_code == 200


def test_fault_after_requests_spares_that_many_requests_but_not_health(database_url: str) -> None:
    client = make_client(database_url, version="2.0.2+http500.after3req")
    assert [client.get("/").status_code for _ in range(2)] == [200, 200]
    assert client.get("/health").status_code == 200
    assert [client.get("/").status_code for _ in range(2)] == [200, 500]


def test_lag_build_makes_each_request_that_much_slower(database_url: str) -> None:
    client = make_client(database_url, version="2.0.10+lag60")
    started = time.perf_counter()
    assert client.get("/work?ms=100").status_code == 200
    # 100 ms of work, then 60 % of the request's time again.
    assert 0.155 <= time.perf_counter() - started < 1.0


def test_tracebacks_build_logs_each_request_and_answers_it(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(database_url, version="2.0.9+tracebacks")
    assert client.get("/").status_code == 200
    failed = [r for r in caplog.records if r.exc_info]
    assert failed and "injected fault tracebacks" in str(failed[0].exc_info[1])


def test_leak_build_keeps_memory_per_request(database_url: str) -> None:
    client = make_client(database_url, version="2.0.8+leak2")
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            assert client.get("/").status_code == 200
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 20 requests kept 2 MB each (the resident set is no measure: freed pages are reused).
    assert after - before >= 40 * 2**20


def test_local_label_is_lowercased_and_empty_without_plus() -> None:
    assert local_label("2.0.2+HTTP500") == "http500"
    assert local_label("2.0.2") == ""


def test_crash_build_refuses_to_start(database_url: str) -> None:
    with pytest.raises(InjectedCrash, match=r"2\.0\.1\+crash is a deliberately broken build"):
        create_app(Settings(database_url, "green", "2.0.1+crash"))


def test_http500_build_fails_every_route_but_health_and_metrics(database_url: str) -> None:
    client = make_client(database_url, version="2.0.2+http500")
    assert client.get("/").status_code == 500
    assert client.get("/notes").status_code == 500
    assert client.post("/notes", json={"body": "x"}).status_code == 500
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/").json == {"error": "injected fault", "fault": "http500"}


def test_error_rate_build_fails_about_that_share_of_requests(database_url: str) -> None:
    client = make_client(database_url, fault=Fault(error_rate=0.3), rng=random.Random(7))
    statuses = [client.get("/").status_code for _ in range(400)]
    failed = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 80 <= failed <= 160
    assert all(client.get("/health").status_code == 200 for _ in range(20))


def test_slow_build_delays_requests_but_not_health_or_metrics(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("sampleapp.app.time.sleep", slept.append)
    client = make_client(database_url, version="2.0.4+slow1500")
    client.get("/health")
    client.get("/metrics")
    assert slept == []
    assert client.get("/").status_code == 200
    assert slept == [1.5]
