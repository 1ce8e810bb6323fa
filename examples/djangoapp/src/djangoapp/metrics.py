"""Prometheus metrics in the same format as the sample service's (examples/sampleapp).

bluegreen's golden_signals reads ``http_request_duration_seconds`` (histogram) and
``http_requests_total`` with labels method, route and status, where route is the URL
pattern (``/notes/<int:note_id>``), never the raw path. The service runs as one gunicorn
process with threads, so the default registry is the whole truth.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_LABELS = ("method", "route", "status")

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time spent answering HTTP requests, by URL pattern",
    REQUEST_LABELS,
    buckets=LATENCY_BUCKETS,
)

REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by URL pattern and status",
    REQUEST_LABELS,
)

IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being answered right now (saturation of the thread pool)",
)

BUILD_INFO = Gauge(
    "djangoapp_build_info",
    "Always 1; labels say which version and colour this process is",
    ("version", "colour"),
)

# Requests that match no URL pattern share one label value, so scanners cannot blow up
# the number of series.
UNMATCHED_ROUTE = "<unmatched>"
