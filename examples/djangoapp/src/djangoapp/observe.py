"""Every response names its colour and version, and is counted and timed."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse

from djangoapp import metrics

COLOURS = ("blue", "green")


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (``/notes/<int:note_id>``), or ``<unmatched>``."""
    match = getattr(request, "resolver_match", None)
    return "/" + match.route if match is not None else metrics.UNMATCHED_ROUTE


class ObserveMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.BLUEGREEN_COLOUR not in COLOURS:
            raise ImproperlyConfigured(
                f"BLUEGREEN_COLOUR must be blue or green, got {settings.BLUEGREEN_COLOUR!r}"
            )
        self.get_response = get_response
        self.colour = settings.BLUEGREEN_COLOUR
        self.version = settings.BLUEGREEN_VERSION
        metrics.BUILD_INFO.labels(version=self.version, colour=self.colour).set(1)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        metrics.IN_PROGRESS.inc()
        try:
            response = self.get_response(request)
        finally:
            metrics.IN_PROGRESS.dec()
        response["X-Bluegreen-Colour"] = self.colour
        response["X-Bluegreen-Version"] = self.version
        labels = {
            "method": request.method or "",
            "route": route_of(request),
            "status": str(response.status_code),
        }
        metrics.REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(**labels).inc()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A database that cannot answer is a 503 naming the driver's error, as in sampleapp."""
        if not isinstance(exception, DatabaseError):
            return None
        cause = exception.__cause__ or exception
        lines = str(cause).strip().splitlines() or [""]
        detail = f"{type(cause).__name__}: {lines[0]}"
        return JsonResponse({"error": "database unavailable", "detail": detail}, status=503)
