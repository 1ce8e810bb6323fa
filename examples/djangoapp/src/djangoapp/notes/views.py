"""JSON views: the same API as the sample service (examples/sampleapp)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from djangoapp.notes.models import FEATURES, Note

SERVICE = "djangoapp"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def identity() -> dict[str, str]:
    return {
        "service": SERVICE,
        "version": settings.BLUEGREEN_VERSION,
        "colour": settings.BLUEGREEN_COLOUR,
    }


def error(status: int, message: str, detail: str = "") -> JsonResponse:
    return JsonResponse({"error": message, "detail": detail}, status=status)


def reason(exc: Exception) -> str:
    """The driver's own message, first line only."""
    cause = exc.__cause__ or exc
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0]}"


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(identity())


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 after a real query and a check that the schema has what this version uses."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            problem = schema_problem(cursor)
            revision = None if problem else schema_revision(cursor)
    except DatabaseError as exc:
        problem = reason(exc)
    if problem:
        return JsonResponse(
            {"status": "unavailable", "database": "error", "reason": problem}, status=503
        )
    return JsonResponse(
        {"status": "ok", "database": "ok", "schema_revision": revision, **identity()}
    )


def schema_problem(cursor: Any) -> str | None:
    table = Note._meta.db_table
    if table not in connection.introspection.table_names(cursor):
        return f"table {table} does not exist; run djangoapp-manage migrate"
    present = {c.name for c in connection.introspection.get_table_description(cursor, table)}
    missing = [f.column for f in Note._meta.concrete_fields if f.column not in present]
    if missing:
        return f"{table} lacks column {', '.join(missing)}; run djangoapp-manage migrate"
    return None


def schema_revision(cursor: Any) -> str | None:
    """The latest applied migration of the notes app (``0002_note_author``)."""
    cursor.execute("SELECT max(name) FROM django_migrations WHERE app = 'notes'")
    row = cursor.fetchone()
    return row[0] if row else None


@require_http_methods(["GET", "POST"])
def notes(request: HttpRequest) -> JsonResponse:
    return create_note(request) if request.method == "POST" else list_notes(request)


def create_note(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        payload = None
    body = payload.get("body") if isinstance(payload, dict) else None
    if not isinstance(body, str) or not body.strip():
        return error(400, "Bad Request", 'expected a JSON object {"body": "<non-empty text>"}')
    fields: dict[str, Any] = {
        "body": body,
        "colour": settings.BLUEGREEN_COLOUR,
        "version": settings.BLUEGREEN_VERSION,
    }
    if FEATURES.author:
        author = payload.get("author")
        if author is not None and not isinstance(author, str):
            return error(400, "Bad Request", '"author" must be text when given')
        fields["author"] = author
    note = Note.objects.create(**fields)
    created = {"id": note.pk, "colour": note.colour, "version": note.version}
    response = JsonResponse(created, status=201)
    response["Location"] = f"/notes/{note.pk}"
    return response


def list_notes(request: HttpRequest) -> JsonResponse:
    raw = request.GET.get("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        limit = int(raw) if raw.lstrip("-").isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            return error(
                400, "Bad Request", f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}"
            )
    return JsonResponse({"notes": [n.as_dict() for n in Note.objects.order_by("-id")[:limit]]})


@require_GET
def note(request: HttpRequest, note_id: int) -> JsonResponse:
    found = Note.objects.filter(pk=note_id).first()
    if found is None:
        return error(404, "Not Found", f"note {note_id} does not exist")
    return JsonResponse(found.as_dict())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error(404, "Not Found", f"no route for {request.path}")


def server_error(request: HttpRequest) -> JsonResponse:
    return error(500, "Internal Server Error")
