"""Settings from environment variables (12-factor), with safe defaults for development.

DJANGO_DEBUG, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL, DJANGO_LOG_LEVEL,
LOG_FORMAT here. Each app declares its own settings once, with their DURABLE_*, APPROVALS_*, API_* and LLM
variables and defaults (durable/conf.py, approvals/conf.py, api/conf.py, llm/conf.py); nothing
here restates them. The README lists them all.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from approvals.conf import SETTINGS as APPROVALS_SETTINGS
from durable.backends.sqlite3 import database
from durable.conf import SETTINGS as DURABLE_SETTINGS

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


PRODUCTION = os.environ.get("DJANGO_ENV") == "production"


def development_secret_key(path: Path) -> str:
    """A random key made once per install and kept in `path` (like the demo passwords): a key
    written in the source would let anyone forge sessions and every token's webhook signature."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 50:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(secrets.token_urlsafe(48))
    draft.chmod(0o600)
    try:
        os.link(draft, path)  # atomic: of two processes starting at once, the first one's key wins
    except FileExistsError:
        if len(path.read_text().strip()) < 50:  # a short key left by hand: replace it
            os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]

if PRODUCTION:
    # Production refuses to start with development defaults.
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "set DJANGO_SECRET_KEY to a random value of 50+ characters in production (openssl rand -hex 32)"
        )
    if APPROVALS_SETTINGS.from_environment("WEBHOOK_ALLOW_HTTP", default=False):
        raise ImproperlyConfigured("webhooks are https-only in production: unset APPROVALS_WEBHOOK_ALLOW_HTTP")
elif not SECRET_KEY:
    SECRET_KEY = development_secret_key(BASE_DIR / "var" / "dev-secret-key")

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # Django's admin with our site (config/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "axes",  # failed logins: locked out after AXES_FAILURE_LIMIT tries (username and address)
    "ninja",  # only for its bundled Swagger UI assets: the docs page loads nothing from a CDN
    "durable",
    "approvals",
    "api",
]

MIDDLEWARE = [
    # A span per request when tracing is on (executions started in it are linked); else a pass-through.
    "durable.tracing.TracingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before checking it
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES: dict[str, Any] = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The engine's SQLite: WAL, IMMEDIATE transactions and a queue for writers across processes
    # (durable/backends/sqlite3). Test databases are files so worker processes can share them.
    test_file = os.environ.get("DJANGO_TEST_DB", str(BASE_DIR / "var" / "test.sqlite3"))
    DATABASES = {"default": database(DATABASES["default"]["NAME"], test_name=test_file)}
# Workers keep connections between jobs, checked before reuse (a restarted database is survived).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DB_CONN_MAX_AGE", "60"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Development serves static files straight from the apps and static/ (no collectstatic needed);
# decided when settings load, as pytest-django turns DEBUG off later.
WHITENOISE_AUTOREFRESH = DEBUG

# The engine keeps the executions of documents not yet final past their retention period.
DURABLE = {
    "RETENTION_HOLD": DURABLE_SETTINGS.from_environment("RETENTION_HOLD", "approvals.selectors.execution_list_held")
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 960}}

# Request bodies Django reads into memory: above the document limit, so that one answers first.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(
    os.environ.get(
        "DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE",
        str(max(APPROVALS_SETTINGS.from_environment("MAX_DOCUMENT_BYTES") * 2, 2621440)),
    )
)

# Per-process cache by default; "shared" (Redis) is what counters every process must agree on
# use (the API's per-token rate limit).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}

# Failed logins (django-axes): a username at an address is locked out after AXES_FAILURE_LIMIT
# failures for AXES_COOLOFF_TIME; the login page then answers 429 with Retry-After.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(seconds=int(os.environ.get("AXES_COOLOFF_SECONDS", "900")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "approvals.views.login_locked_out"
AXES_VERBOSE = False
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    # The client's address is the one the proxy saw (the last hop of X-Forwarded-For), not the proxy's.
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_COUNT = 1

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "approvals:dashboard"
LOGOUT_REDIRECT_URL = "login"

# LOG_FORMAT=json: one JSON object a line (production's default), with the execution, invocation,
# operation and attempt ids on every line logged during an invocation (durable.logcontext).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"durable_ids": {"()": "durable.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["durable_ids"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    # django-axes logs every successful login's reset at INFO; lockouts come at WARNING.
    "loggers": {"axes": {"level": "WARNING"}},
}

if not DEBUG:
    # https only, unless told otherwise (compose on plain http://localhost turns these off).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    # TLS ends at a proxy that sets X-Forwarded-Proto (and strips it from clients' requests).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", False)

# E-mail (review reminders and escalations), Django 6.1's MAILERS: printed to the console in
# development; in production SMTP to DJANGO_EMAIL_HOST. DJANGO_EMAIL_BACKEND names another backend
# (the filebased one writes each message to a file in DJANGO_EMAIL_FILE_PATH).
_EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
_EMAIL_OPTIONS: dict[str, Any] = {}
if _EMAIL_BACKEND.endswith("smtp.EmailBackend"):
    _EMAIL_OPTIONS = {
        "host": os.environ.get("DJANGO_EMAIL_HOST", "localhost"),
        "port": int(os.environ.get("DJANGO_EMAIL_PORT", "25")),
        "username": os.environ.get("DJANGO_EMAIL_HOST_USER", ""),
        "password": os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("DJANGO_EMAIL_USE_TLS", False),
    }
elif _EMAIL_BACKEND.endswith("filebased.EmailBackend"):
    _EMAIL_OPTIONS = {"file_path": os.environ.get("DJANGO_EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))}
MAILERS = {"default": {"BACKEND": _EMAIL_BACKEND, "OPTIONS": _EMAIL_OPTIONS}}
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "approvals@localhost")
