"""Prometheus metrics, registered once per process in the default registry.

The service runs as one gunicorn process with threads, so the default registry (which
also carries the process_* and python_* collectors) is the whole truth and
prometheus_client's multiprocess mode is not needed.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# A bucket per millisecond up to 150 ms, where this service answers, so that its own p95
# stands beside the load balancer's (nginx logs request times to the millisecond) instead
# of being interpolated across a 25 ms bucket; the usual coarse steps above.
LATENCY_BUCKETS = (*(ms / 1000 for ms in range(1, 151)), 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_LABELS = ("method", "route", "status")

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time spent answering HTTP requests, by URL rule",
    REQUEST_LABELS,
    buckets=LATENCY_BUCKETS,
)

REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by URL rule and status",
    REQUEST_LABELS,
)

IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being answered right now (saturation of the thread pool)",
)

DB_CONNECTIONS_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections checked out of the pool",
)

BUILD_INFO = Gauge(
    "sampleapp_build_info",
    "Always 1; labels say which version and colour this process is",
    ("version", "colour"),
)

# Requests that match no URL rule share one label value, so scanners cannot blow up
# the number of series.
UNMATCHED_ROUTE = "<unmatched>"
