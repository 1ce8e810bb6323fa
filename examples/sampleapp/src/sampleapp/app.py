"""The notes service: a small Flask app that bluegreen releases in its lab and tests."""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as distribution_version
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, g, jsonify, request, url_for
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from sampleapp import metrics
from sampleapp.db import make_engine, notes
from sampleapp.faults import Fault, fault_from_version, local_label
from sampleapp.releases import Features, features_from_version

SERVICE = "sampleapp"
COLOURS = ("blue", "green")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_WORK_MS = 2000
# Probes must see the truth about the process, so faults never touch these endpoints.
FAULT_EXEMPT_ENDPOINTS = frozenset({"health", "metrics"})

log = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


class InjectedCrash(RuntimeError):
    """Raised at start by a ``+crash`` build so that gunicorn fails to boot."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    colour: str
    version: str
    # SAMPLEAPP_BARE=1: no /metrics and no X-Bluegreen-* headers, like most services a team
    # brings; bluegreen must then measure and prove everything at the load balancer.
    bare: bool = False


def installed_version() -> str:
    return distribution_version(SERVICE)


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read DATABASE_URL and BLUEGREEN_COLOUR; the version comes from the installed package."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        raise ConfigError(
            "DATABASE_URL is not set; set it to e.g. postgresql+psycopg://user:pw@db1/sampleapp "
            "or sqlite:////var/lib/sampleapp/app.db"
        )
    colour = env.get("BLUEGREEN_COLOUR", "").strip().lower()
    if colour not in COLOURS:
        raise ConfigError(f"BLUEGREEN_COLOUR must be blue or green, got {colour!r}")
    bare = env.get("SAMPLEAPP_BARE", "").strip().lower() in ("1", "true", "yes")
    return Settings(
        database_url=database_url, colour=colour, version=installed_version(), bare=bare
    )


def create_app(
    settings: Settings | None = None,
    fault: Fault | None = None,
    rng: random.Random | None = None,
) -> Flask:
    """Build the app; without arguments, from the environment and the installed version."""
    settings = settings or settings_from_env()
    fault = fault_from_version(settings.version) if fault is None else fault
    if fault.crash:
        raise InjectedCrash(
            f"{SERVICE} {settings.version} is a deliberately broken build "
            f"(local label +{local_label(settings.version)}): refusing to start"
        )
    if fault.active:
        log.warning("%s %s injects faults: %s", SERVICE, settings.version, fault.describe())

    engine = make_engine(settings.database_url, application_name=f"{SERVICE}-{settings.colour}")
    app = Flask(SERVICE)
    app.json.sort_keys = False
    app.extensions["sampleapp.engine"] = engine
    metrics.BUILD_INFO.labels(version=settings.version, colour=settings.colour).set(1)
    metrics.DB_CONNECTIONS_IN_USE.set_function(lambda: _connections_in_use(engine))

    _install_hooks(app, settings, fault, rng or random.Random())
    _install_routes(app, settings, engine, features_from_version(settings.version))
    return app


def note_columns(features: Features) -> list[sa.Column]:
    """The columns of notes that this version reads and writes."""
    return [column for column in notes.columns if column.name != "author" or features.author]


def _connections_in_use(engine: Engine) -> float:
    checkedout = getattr(engine.pool, "checkedout", None)
    return float(checkedout()) if checkedout else 0.0


def _burn_cpu(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def _install_hooks(app: Flask, settings: Settings, fault: Fault, rng: random.Random) -> None:
    faults_from = time.monotonic() + fault.after_seconds
    requests_seen = itertools.count(1)
    leaked: list[bytearray] = []

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        metrics.IN_PROGRESS.inc()

    @app.before_request
    def inject_fault() -> Any:
        if not fault.active or request.endpoint in FAULT_EXEMPT_ENDPOINTS:
            return None
        if time.monotonic() < faults_from:
            return None
        if fault.after_requests and next(requests_seen) <= fault.after_requests:
            return None
        if fault.latency_seconds:
            time.sleep(fault.latency_seconds)
        if fault.lag:
            g.lag = fault.lag
        if fault.cpu_ms_per_request:
            _burn_cpu(fault.cpu_ms_per_request / 1000)
        if fault.leak_mb_per_request:
            # Written, so the pages are resident and counted, not just reserved.
            leaked.append(bytearray(b"x" * (fault.leak_mb_per_request << 20)))
        if fault.tracebacks:
            try:
                # With the database URL in it, as careless errors print it: the log
                # excerpts bluegreen keeps must hide the password.
                raise RuntimeError(
                    f"injected fault {local_label(settings.version)} on {settings.database_url}"
                )
            except RuntimeError:
                log.exception("%s %s failed in %s", SERVICE, settings.version, request.path)
        if fault.http500 or (fault.error_rate and rng.random() < fault.error_rate):
            return jsonify(error="injected fault", fault=local_label(settings.version)), 500
        return None

    @app.after_request
    def observe(response: Response) -> Response:
        if not settings.bare:
            response.headers["X-Bluegreen-Colour"] = settings.colour
            response.headers["X-Bluegreen-Version"] = settings.version
        started = g.pop("started", None)
        lag = g.pop("lag", 0.0)
        if lag and started is not None:
            time.sleep(lag * (time.perf_counter() - started))
        if started is not None:
            labels = {
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else metrics.UNMATCHED_ROUTE,
                "status": str(response.status_code),
            }
            metrics.REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(**labels).inc()
            metrics.IN_PROGRESS.dec()
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=exc.name, detail=exc.description), exc.code or 500

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError) -> tuple[Response, int]:
        log.exception("database error")
        return jsonify(error="database unavailable", detail=_reason(exc)), 503


def _install_routes(app: Flask, settings: Settings, engine: Engine, features: Features) -> None:
    columns = note_columns(features)

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"service": SERVICE, "version": settings.version, "colour": settings.colour}

    @app.get("/health")
    def health() -> tuple[dict[str, Any], int]:
        status = {"service": SERVICE, "version": settings.version, "colour": settings.colour}
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                inspector = sa.inspect(conn)
                reason = _schema_problem(inspector, columns)
                if reason:
                    return {"status": "unavailable", "database": "error", "reason": reason}, 503
                revision = _schema_revision(conn, inspector)
        except SQLAlchemyError as exc:
            return {"status": "unavailable", "database": "error", "reason": _reason(exc)}, 503
        return {"status": "ok", "database": "ok", "schema_revision": revision, **status}, 200

    @app.post("/notes")
    def create_note() -> tuple[dict[str, Any], int, dict[str, str]]:
        payload = request.get_json(silent=True)
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, str) or not body.strip():
            raise BadRequest('expected a JSON object {"body": "<non-empty text>"}')
        values = {"body": body, "colour": settings.colour, "version": settings.version}
        if features.author:
            author = payload.get("author")
            if author is not None and not isinstance(author, str):
                raise BadRequest('"author" must be text when given')
            values["author"] = author
        with engine.begin() as conn:
            result = conn.execute(notes.insert().values(**values))
            note_id = result.inserted_primary_key[0]
        location = url_for("get_note", note_id=note_id)
        created = {"id": note_id, "colour": settings.colour, "version": settings.version}
        return created, 201, {"Location": location}

    @app.get("/notes")
    def list_notes() -> dict[str, Any]:
        limit = _limit(request.args.get("limit"))
        query = sa.select(*columns).order_by(notes.c.id.desc()).limit(limit)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {"notes": [_note(row) for row in rows]}

    @app.get("/notes/<int:note_id>")
    def get_note(note_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            query = sa.select(*columns).where(notes.c.id == note_id)
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"note {note_id} does not exist")
        return _note(row)

    @app.get("/work")
    def work() -> dict[str, Any]:
        # A route whose time the caller chooses: benchmarks compare latency measured at the
        # load balancer with this process's own histogram on answers of a known length.
        milliseconds = _work_ms(request.args.get("ms"))
        time.sleep(milliseconds / 1000)
        return {"worked_ms": milliseconds, "colour": settings.colour}

    @app.get("/metrics", endpoint="metrics")
    def metrics_endpoint() -> Response:
        if settings.bare:
            raise NotFound("this service serves no metrics (SAMPLEAPP_BARE)")
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return limit


def _work_ms(raw: str | None) -> int:
    try:
        milliseconds = int(raw or "")
    except ValueError:
        milliseconds = -1
    if not 0 <= milliseconds <= MAX_WORK_MS:
        raise BadRequest(f"ms must be an integer from 0 to {MAX_WORK_MS}, got {raw!r}")
    return milliseconds


def _schema_problem(inspector: sa.Inspector, columns: list[sa.Column]) -> str | None:
    """Why the schema cannot serve this version (a migration missing), or None."""
    if not inspector.has_table(notes.name):
        return "table notes does not exist; run sampleapp-migrate"
    present = {column["name"] for column in inspector.get_columns(notes.name)}
    missing = [column.name for column in columns if column.name not in present]
    if missing:
        return f"notes lacks column {', '.join(missing)}; run sampleapp-migrate"
    return None


def _schema_revision(conn: sa.Connection, inspector: sa.Inspector) -> str | None:
    if not inspector.has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _note(row: Mapping[str, Any]) -> dict[str, Any]:
    created_at = row["created_at"]
    if isinstance(created_at, datetime) and created_at.tzinfo is None:
        # SQLite keeps CURRENT_TIMESTAMP as naive UTC text.
        created_at = created_at.replace(tzinfo=UTC)
    note = {
        "id": row["id"],
        "body": row["body"],
        "created_at": created_at.isoformat() if created_at else None,
        "colour": row["colour"],
        "version": row["version"],
    }
    if "author" in row:
        note["author"] = row["author"]
    return note


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line only (SQLAlchemy appends SQL and a doc link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0]}"
