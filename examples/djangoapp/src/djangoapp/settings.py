"""Settings from the environment only (the colour's env file that bluegreen writes).

DATABASE_URL        sqlite:////var/lib/djangoapp/djangoapp.db or postgresql://user:pw@db1/djangoapp
BLUEGREEN_COLOUR    blue or green; reported in every response
DJANGO_SECRET_KEY   Django's SECRET_KEY (keep it in vault)
"""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from djangoapp.releases import installed_version

# Both colours on one host share one SQLite file; a writer waits this long (seconds) for
# the other colour's write lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 5


def required(name: str, example: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is not set; set it in the environment, e.g. {example}")
    return value


def database(url: str, colour: str) -> dict:
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets one colour read while the other writes.
        config["OPTIONS"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # application_name lets the DBA (and the saturation signal) tell colours apart.
        config["OPTIONS"] = {"connect_timeout": 5, "application_name": f"djangoapp-{colour}"}
    return config


BLUEGREEN_COLOUR = os.environ.get("BLUEGREEN_COLOUR", "").strip().lower()
BLUEGREEN_VERSION = installed_version()

SECRET_KEY = required("DJANGO_SECRET_KEY", "a long random string kept in vault")
DEBUG = False
# nginx sits in front and health probes use the colour's address: any Host is fine here.
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["djangoapp.notes"]
MIDDLEWARE = ["djangoapp.observe.ObserveMiddleware"]
ROOT_URLCONF = "djangoapp.urls"
WSGI_APPLICATION = "djangoapp.wsgi.application"

DATABASES = {
    "default": database(
        required("DATABASE_URL", "sqlite:////var/lib/djangoapp/djangoapp.db"),
        BLUEGREEN_COLOUR or "unknown",
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
