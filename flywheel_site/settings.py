"""Django settings for Flywheel, read from the environment.

Importing this module has no side effects: it only reads environment variables. The embedded
defaults (SQLite under ``var/``, eager Celery) make a fresh checkout run; production sets
``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY`` and ``ALLOWED_HOSTS`` and turns ``DEBUG`` off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from flywheel_site import app_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FLYWHEEL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------------
# Production defaults are strict: DEBUG off, no wildcard hosts, the secret must come from the
# environment. `make run` sets DEBUG=1, which allows an insecure development key.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_bool("FLYWHEEL_TESTING", False):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "labeling",
    "sampling",
    "sampling.judges",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "labeling.middleware.DomainErrorMiddleware",
]

ROOT_URLCONF = "flywheel_site.urls"
WSGI_APPLICATION = "flywheel_site.wsgi.application"
ASGI_APPLICATION = "flywheel_site.asgi.application"

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
                "labeling.context_processors.flywheel",
                "sampling.context_processors.alerts",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user@127.0.0.1:5432/flywheel; default: SQLite file under var/.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'flywheel.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process and the CLI write without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A second connection to the same database for long streaming reads (exports): a server-side
    # cursor in its own transaction streams, while progress is written through "default".
    DATABASES["export_reader"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env_bool("FLYWHEEL_TESTING", False)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", VAR_DIR / "exports"))
MODEL_ROOT = Path(os.environ.get("MODEL_ROOT", VAR_DIR / "models"))

# --- Security ---------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Request bodies: DRF endpoints enforce their own per-request limits (see labeling.limits).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(32 * 1024**2)))

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.auth.IngestTokenAuthentication",
        "labeling.auth.UserTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies: DRF's parser, refusing the NUL character PostgreSQL cannot store.
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "ingest": os.environ.get("INGEST_RATE_LIMIT", "6000/min"),
        "login": os.environ.get("LOGIN_RATE_LIMIT", "20/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flywheel API",
    "DESCRIPTION": "Ingest interactions, sample them for labelling, label, estimate, export.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Each operation once, at its canonical path; the slash-less aliases are in docs/api.md.
    "PREPROCESSING_HOOKS": ["labeling.routing.schema_without_aliases"],
    # Swagger UI assets are served locally: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Cache (rate limits) ----------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "flywheel",
        }
        if REDIS_URL and not env_bool("FLYWHEEL_LOCAL_CACHE", False)
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery -----------------------------------------------------------------------------------
# With no broker configured, tasks run eagerly in-process and the UI says so.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker host that does not answer must not stall a request for the OS connect timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60, "socket_connect_timeout": 2}
CELERY_TASK_DEFAULT_QUEUE = "flywheel"
# LLM judges wait on outside endpoints: their own queue, so an outage never delays other work.
CELERY_TASK_ROUTES = {"judges.*": {"queue": "judges"}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Email (alerts) ----------------------------------------------------------------------------
# Development prints emails on the console; production sends through SMTP (EMAIL_HOST etc.).
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "flywheel@localhost")

# --- Logging ----------------------------------------------------------------------------------
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"forbidden_quiet": {"()": "flywheel_site.logfilters.ForbiddenWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["forbidden_quiet"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx and httpcore log every request at INFO (URL and status): one line per webhook
        # attempt and per judge call, which drowns the worker's log. Flywheel logs what matters
        # (failures, retries, breakers) itself.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Flywheel ---------------------------------------------------------------------------------
# Every Flywheel setting, declared with its default in flywheel_site/app_settings.py (listed in
# docs/settings.md), from FLYWHEEL_<NAME> environment variables. Read them with
# flywheel_site.app_settings.setting(NAME), never from this dict directly.
FLYWHEEL = app_settings.from_environ()

# Periodic work (Celery beat). The database is the source of truth: each sweep finds what a lost
# message or a Redis outage left undone.
CELERY_BEAT_SCHEDULE = {
    "labeling-sweep-unprocessed": {"task": "labeling.sweep_unprocessed", "schedule": 60.0},
    "labeling-expire-leases": {"task": "labeling.expire_leases", "schedule": 60.0},
    "labeling-sweep-exports": {"task": "labeling.sweep_exports", "schedule": 120.0},
    # Webhook deliveries that are due (retries, and whatever a Redis outage left in the outbox).
    "labeling-sweep-webhooks": {"task": "labeling.sweep_webhooks", "schedule": 30.0},
    "sampling-score-sweep": {"task": "sampling.score_sweep", "schedule": 120.0},
    "sampling-dispatch-scheduled": {"task": "sampling.dispatch_scheduled_runs", "schedule": 60.0},
    # Scheduled retrain: every project whose labels outgrew its proxy by retrain_every.
    "sampling-retrain-sweep": {"task": "sampling.retrain_sweep", "schedule": 900.0},
    # Judges: lift budget pauses on a new day, queue pool-scope work, resume killed batches.
    "judges-sweep": {"task": "judges.sweep", "schedule": 60.0},
    # Alert rules: confirmed regressions (always-valid monitoring) -> alerts, email, webhooks.
    "sampling-evaluate-alerts": {"task": "sampling.evaluate_alerts", "schedule": 3600.0},
    # Judges: trust reports (and weights) of judges whose labels changed or that are a day old.
    "judges-calibrate-sweep": {"task": "judges.calibrate_sweep", "schedule": 900.0},
}
