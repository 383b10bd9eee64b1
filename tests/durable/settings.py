"""Settings for the engine's own tests: `durable` in a project of its own, without this
repository's product (no approvals, api or llm installed), as another project would have it.

`make test` runs tests/durable and tests/chaos with these (`pytest --ds=tests.durable.settings`).
The database comes from DATABASE_URL (SQLite by default), Redis from REDIS_URL, and the engine's
timings from the DURABLE_* variables the worker tests set for their processes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

from durable.backends.sqlite3 import database

ROOT = Path(__file__).resolve().parents[2]

# Only for these tests; nothing here signs anything that outlives a test run.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_rq",
    "durable",
]
MIDDLEWARE = [
    "durable.tracing.TracingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.durable.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("DATABASE_URL", "").startswith("postgres"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    path = os.environ.get("DATABASE_URL", "").removeprefix("sqlite:///") or str(ROOT / "var" / "engine.sqlite3")
    test_file = os.environ.get("DJANGO_TEST_DB", str(ROOT / "var" / "test-engine.sqlite3"))
    DATABASES = {"default": database(path, test_name=test_file)}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

RQ_QUEUES = {"default": {"URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), "DEFAULT_TIMEOUT": 960}}

# The engine's settings come from its DURABLE_* variables (durable/conf.py): the worker tests set
# them for their processes.

# LOG_FORMAT=json as in the project's settings: JSON lines with the execution's ids (durable.logcontext).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"durable_ids": {"()": "durable.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": os.environ.get("LOG_FORMAT", "plain"),
            "filters": ["durable_ids"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
