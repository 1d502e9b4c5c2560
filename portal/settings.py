"""Settings for Secrets Portal: one module, read from environment variables.

Every variable is documented in the README. Defaults make a clone run on SQLite with an
in-process moto server (``PORTAL_DEMO=1``, set by ``make run``). Without ``PORTAL_DEMO`` the
process refuses to start on a default ``SECRET_KEY`` or ``PORTAL_FINGERPRINT_KEY``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal import sso
from secrets_admin.observability import logs as _observability_logs

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_list(name: str, default: str = "") -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


PORTAL_DEMO = env_bool("PORTAL_DEMO")
TESTING = env_bool("PORTAL_TESTING")
DEBUG = env_bool("DEBUG")

_DEMO_SECRET_KEY = "demo-only-secret-key-not-for-production-0123456789abcdefghijklmnop"  # noqa: S105 # nosec B105 # demo and tests only; refused in production
_DEMO_FINGERPRINT_KEY = "demo-only-fingerprint-key"

SECRET_KEY = env_str("SECRET_KEY", _DEMO_SECRET_KEY if (PORTAL_DEMO or TESTING) else "")
PORTAL_FINGERPRINT_KEY = env_str(
    "PORTAL_FINGERPRINT_KEY", _DEMO_FINGERPRINT_KEY if (PORTAL_DEMO or TESTING) else ""
)
#: Production keys: at least this many bytes and this many distinct characters. 32 bytes is a
#: 256-bit HMAC key's length (NIST SP 800-107 r1: key at least the hash's security strength);
#: too few distinct characters ("aaaa...", "abab...") betrays a made-up key, not a random one.
KEY_MIN_BYTES = 32
KEY_MIN_DISTINCT = 10


def weak_key_reason(value: str) -> str:
    """Why ``value`` is too weak to sign sessions or fingerprints (``""`` when it is not)."""
    size = len(value.encode("utf-8"))
    if size < KEY_MIN_BYTES:
        return f"it is {size} bytes long; use at least {KEY_MIN_BYTES}"
    if len(set(value)) < KEY_MIN_DISTINCT:
        return (
            f"it has only {len(set(value))} distinct characters (low entropy); "
            f"use at least {KEY_MIN_DISTINCT}"
        )
    return ""


if not (PORTAL_DEMO or TESTING):
    for _name, _value in (
        ("SECRET_KEY", SECRET_KEY),
        ("PORTAL_FINGERPRINT_KEY", PORTAL_FINGERPRINT_KEY),
    ):
        if _value and (_reason := weak_key_reason(_value)):
            raise ImproperlyConfigured(
                f"{_name} is too weak: {_reason}. Generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))' "
                "(production mode: PORTAL_DEMO is not set)."
            )
    if not SECRET_KEY or SECRET_KEY == _DEMO_SECRET_KEY:
        raise ImproperlyConfigured(
            "Set SECRET_KEY to a long random string (production mode: PORTAL_DEMO is not set)."
        )
    if not PORTAL_FINGERPRINT_KEY or PORTAL_FINGERPRINT_KEY == _DEMO_FINGERPRINT_KEY:
        raise ImproperlyConfigured(
            "Set PORTAL_FINGERPRINT_KEY to a long random string kept outside the database "
            "(production mode: PORTAL_DEMO is not set)."
        )

# --- Single sign-on (README "Single sign-on"): providers from PORTAL_SSO_* variables.
SOCIALACCOUNT_PROVIDERS = sso.providers_from_env(os.environ)
_saml_available = importlib.util.find_spec("onelogin") is not None
if "saml" in SOCIALACCOUNT_PROVIDERS and not _saml_available:
    raise ImproperlyConfigured(
        "A SAML provider is configured but the SAML extra is missing: "
        "pip install 'secrets-portal[saml]' (needs the xmlsec1 libraries)."
    )
PORTAL_GROUPS_CLAIM = env_str("PORTAL_GROUPS_CLAIM", sso.DEFAULT_GROUPS_CLAIM)
#: Identity-provider group -> role label, applied at every SSO sign-in (permissions.roles_for_groups).
PORTAL_ROLE_GROUPS = sso.role_groups_from_env(env_str("PORTAL_ROLE_GROUPS"))

# --- Access scopes (README "Access rules"): who holds which role on which secrets and
# environments. A TOML file, or the same rules as a JSON object; read and validated at start
# (secrets_admin/apps.py), so a bad rule stops the process with the rule's line.
PORTAL_ACCESS_FILE = env_str("PORTAL_ACCESS_FILE")
PORTAL_ACCESS_RULES = env_str("PORTAL_ACCESS_RULES")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if (PORTAL_DEMO or TESTING) else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    *(["allauth.socialaccount.providers.saml"] if _saml_available else []),
    "django_htmx",
    "template_partials",
    "csp",
    "secrets_admin",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Records derived from a landed save are written after the response went out.
    "secrets_admin.after_response.AfterResponseMiddleware",
    # Load balancer probes: answered before the host check (secrets_admin/health.py).
    "secrets_admin.health.HealthCheckMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "secrets_admin.middleware.PortalMiddleware",
    "secrets_admin.middleware.NoStoreMiddleware",
    # Access scopes: a secret outside the person's scope answers 404 before any view runs.
    "secrets_admin.permissions.ScopeMiddleware",
    # Per-person budget of write steps (PORTAL_WRITE_RATE), after the CSRF check.
    "secrets_admin.throttle.WriteThrottleMiddleware",
    # HEAD is answered wherever GET is (load balancers' checks use it): innermost, so the views
    # see a GET and every middleware above sees the HEAD.
    "secrets_admin.middleware.HeadAsGetMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "csp.context_processors.nonce",
                "secrets_admin.context_processors.portal",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_cache_url = env_str("CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "portal"}
    )
}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG or PORTAL_DEMO or TESTING
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if (PORTAL_DEMO or TESTING or DEBUG)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "secrets_admin:secret_list"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# --- django-allauth. Local accounts exist only in demo mode; SSO is configured separately.
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "secrets_admin.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
SOCIALACCOUNT_STORE_TOKENS = False
# Production is SSO only: no signup, password sign-in or password reset (their URLs do not exist).
# Demo mode and tests keep the local demo users. allauth's checks require no email verification.
SOCIALACCOUNT_ONLY = not (PORTAL_DEMO or TESTING)
SOCIALACCOUNT_ADAPTER = "secrets_admin.adapters.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = env_int("PORTAL_SSO_TIMEOUT", 10)
# A person is (provider, subject), not an email: an email reused or changed at the IdP must
# neither merge two people nor send the second one to a signup form.
ACCOUNT_UNIQUE_EMAIL = False

# --- Sessions and cookies (ASVS 5.0 V3.3, V7.3)
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cache"
    if _cache_url
    else "django.contrib.sessions.backends.db"
)
SESSION_COOKIE_AGE = env_int("PORTAL_SESSION_MAX_AGE", 8 * 3600)
PORTAL_SESSION_IDLE_TIMEOUT = env_int("PORTAL_SESSION_IDLE_TIMEOUT", 30 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
_secure = not (PORTAL_DEMO or TESTING or DEBUG)
SESSION_COOKIE_SECURE = _secure
CSRF_COOKIE_SECURE = _secure
SECURE_SSL_REDIRECT = _secure and env_bool("PORTAL_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers probe /healthz over plain HTTP on the pod address (secrets_admin/health.py).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 31_536_000 if _secure else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _secure
SECURE_HSTS_PRELOAD = _secure
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "secrets_admin.views.errors.csrf_failure"

# --- Bad input (ASVS 5.0 V2.2 input validation): oversized or malformed posts get a 400 page with a sentence, never a 500.
# The largest legitimate post is a whole document (65,536 bytes, AWS's limit) plus form fields.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PORTAL_MAX_POST_BYTES", 1024 * 1024)
# The grid editor posts one field per cell; a 64 KiB secret can hold a few thousand cells.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("PORTAL_MAX_POST_FIELDS", 20_000)

# --- Content-Security-Policy (django-csp 4): no inline script or style anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": [
            "'self'",
            *sso.form_action_origins(SOCIALACCOUNT_PROVIDERS),
            *env_list("PORTAL_CSP_FORM_ACTION"),
        ],
    }
}

# --- Logging: to stderr, never values (the gateway's objects have value-free reprs).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "werkzeug": {"level": "WARNING"},
    },
}

# --- deploy: operators' logs (secrets_admin/observability/logs.py). One line per request and per
# audit event: JSON on stdout in production, readable text on stderr in the demo and tests
# (PORTAL_LOG_FORMAT=json|text overrides). Tracebacks never render messages or locals.
PORTAL_LOG_FORMAT = env_str("PORTAL_LOG_FORMAT", "text" if (PORTAL_DEMO or TESTING) else "json")
if PORTAL_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("PORTAL_LOG_FORMAT must be json or text.")
LOGGING = _observability_logs.logging_config(
    json_lines=PORTAL_LOG_FORMAT == "json", level=env_str("LOG_LEVEL", "INFO")
)
# Outermost, so the request line times (and sees the status of) everything below it.
MIDDLEWARE.insert(0, "secrets_admin.observability.logs.RequestLogMiddleware")
# --- end deploy: logs

# --- deploy: Prometheus metrics (secrets_admin/observability/metrics.py). /metrics answers only
# "Authorization: Bearer <PORTAL_METRICS_TOKEN>"; unset, the endpoint does not exist (404).
PORTAL_METRICS_TOKEN = env_str("PORTAL_METRICS_TOKEN")
# --- end deploy: metrics

# --- deploy: error reports to Sentry (secrets_admin/observability/sentry.py), the `sentry` extra.
# Off unless SENTRY_DSN is set; request bodies, cookies, locals and exception messages are dropped.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    try:
        from secrets_admin.observability import sentry as _sentry

        _sentry.init(
            SENTRY_DSN,
            environment=env_str("SENTRY_ENVIRONMENT", "demo" if PORTAL_DEMO else "production"),
            release=env_str("SENTRY_RELEASE"),
        )
    except ImportError as exc:
        raise ImproperlyConfigured(
            "SENTRY_DSN is set but the sentry extra is missing: pip install 'secrets-portal[sentry]'."
        ) from exc
# --- end deploy: Sentry

# --- The portal itself
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
os.environ.setdefault("AWS_DEFAULT_REGION", AWS_REGION)
PORTAL_SECRET_SUFFIX = env_str("PORTAL_SECRET_SUFFIX", "-secrets")
PORTAL_PROTECTED_ENVIRONMENTS = env_list("PORTAL_PROTECTED_ENVIRONMENTS", "main")
PORTAL_LIST_CACHE_SECONDS = env_int("PORTAL_LIST_CACHE_SECONDS", 60)
PORTAL_LIST_KEEP_SECONDS = env_int("PORTAL_LIST_KEEP_SECONDS", 24 * 3600)
PORTAL_LIST_WAIT_SECONDS = env_float("PORTAL_LIST_WAIT_SECONDS", 1.0)
PORTAL_LIST_PAGE_SIZE = env_int("PORTAL_LIST_PAGE_SIZE", 50)
PORTAL_REVEAL_SECONDS = env_int("PORTAL_REVEAL_SECONDS", 20)
# Reveals per user per window, "<count>/<s|m|h|d>" (e.g. "30/m", "200/h"); see ratelimit.py.
PORTAL_REVEAL_RATE = env_str("PORTAL_REVEAL_RATE", "30/m")
PORTAL_ACCESS_CONTACT = env_str("PORTAL_ACCESS_CONTACT", "your platform team")
# Compliance (the unified-secrets standard): environments every unified secret must have; value rules as a JSON list
# (unset: compliance.DEFAULT_VALUE_RULES); how long findings (never values) stay cached.
PORTAL_REQUIRED_ENVIRONMENTS = env_list("PORTAL_REQUIRED_ENVIRONMENTS", "sandbox,dev,main")
PORTAL_VALUE_RULES = (
    json.loads(env_str("PORTAL_VALUE_RULES")) if env_str("PORTAL_VALUE_RULES") else None
)
PORTAL_COMPLIANCE_CACHE_SECONDS = env_int("PORTAL_COMPLIANCE_CACHE_SECONDS", 120)

# --- Credential hygiene (the account-wide, value-free index; README "Credential hygiene")
# Days a credential may stay unchanged, per environment: "<env or pattern>=<days>", first match.
PORTAL_STALE_DAYS = env_str("PORTAL_STALE_DAYS", "main=90,*=180")
# Keys holding configuration rather than credentials: not checked for reuse or staleness.
PORTAL_NOT_CREDENTIAL_KEYS = env_list(
    "PORTAL_NOT_CREDENTIAL_KEYS",
    "region,*_region,url,*_url,host,*_host,hostname,*_hostname,endpoint*,*_endpoint,*_name,port,*_port,*public_key,*publishable_key,*_id",
)
# Earlier versions read (once each) to date a cell's last change when a secret is first indexed.
PORTAL_INDEX_HISTORY_VERSIONS = env_int("PORTAL_INDEX_HISTORY_VERSIONS", 5)
# Whether the background listing refresh also re-indexes secrets whose version changed.
PORTAL_INDEX_ON_REFRESH = env_bool("PORTAL_INDEX_ON_REFRESH", True)
# Audit (CloudTrail): writes assume this role with SourceIdentity=<user> when set (CloudTrail).
PORTAL_WRITE_ROLE_ARN = env_str("PORTAL_WRITE_ROLE_ARN")
PORTAL_WRITE_ROLE_SECONDS = env_int("PORTAL_WRITE_ROLE_SECONDS", 3600)
PORTAL_AUDIT_PAGE_SIZE = env_int("PORTAL_AUDIT_PAGE_SIZE", 50)
# Change requests: approvals needed, days before an open request expires, admins who
# may apply their own request with a reason (break-glass; comma-separated usernames, off if empty).
PORTAL_REQUIRED_APPROVALS = max(1, env_int("PORTAL_REQUIRED_APPROVALS", 1))
PORTAL_CHANGE_REQUEST_DAYS = env_int("PORTAL_CHANGE_REQUEST_DAYS", 7)
PORTAL_BREAK_GLASS_USERS = env_list("PORTAL_BREAK_GLASS_USERS")
# Approved-but-unapplied change requests (integrity): hours after the last approval before an
# approved request that was not applied expires; 0 (default) = the request's own expiry.
PORTAL_APPROVED_CHANGE_REQUEST_HOURS = env_int("PORTAL_APPROVED_CHANGE_REQUEST_HOURS", 0)
# Notifications (Django's email framework; the demo prints them on the console). Links in emails
# start with PORTAL_BASE_URL (e.g. https://secrets.example.com); tests use the locmem backend.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if PORTAL_DEMO
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "secrets-portal@localhost")
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL").rstrip("/")

# --- Behind a load balancer (README "Settings"): workers, forwarded client addresses, write rate.
#: Processes sharing the reveal and write budgets: PORTAL_WORKERS, else gunicorn's own
#: WEB_CONCURRENCY (its worker count when --workers is not given). Above 1 without CACHE_URL
#: each process counts on its own, so production refuses it (checks.check_shared_rate_limits).
PORTAL_WORKERS = env_int("PORTAL_WORKERS", env_int("WEB_CONCURRENCY", 1))
#: Proxies in front of the portal that append to X-Forwarded-For (an ALB alone: 1; CloudFront
#: and an ALB: 2). 0: X-Forwarded-For is ignored and REMOTE_ADDR is the client (audit.client_ip).
PORTAL_TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXY_COUNT", 0)
#: CIDRs the nearest proxy connects from (e.g. the load balancer's subnets); when set, a request
#: from any other address has its X-Forwarded-For ignored.
PORTAL_TRUSTED_PROXIES = env_list("PORTAL_TRUSTED_PROXIES")
#: Write steps (review, save, propose, restore, copy, migrate) per person per window, as
#: PORTAL_REVEAL_RATE: one person cannot tie up the workers with a run of large posts.
PORTAL_WRITE_RATE = env_str("PORTAL_WRITE_RATE", "30/m")

# --- Audit devices and signed anchors (README "Audit you can prove"; auditdev).
# Devices, comma-separated: stdout, file:/path, cloudwatch:GROUP:STREAM, s3:BUCKET/PREFIX, or
# "none". Anchors: s3:BUCKET/PREFIX (Object Lock on) or cloudwatch:GROUP:STREAM, signed with
# PORTAL_AUDIT_SIGNING_KEY (Ed25519: PEM PKCS#8, or base64 of the raw 32-byte private key).
PORTAL_AUDIT_DEVICES = env_list("PORTAL_AUDIT_DEVICES")
PORTAL_AUDIT_ANCHORS = env_str("PORTAL_AUDIT_ANCHORS")
PORTAL_AUDIT_SIGNING_KEY = env_str("PORTAL_AUDIT_SIGNING_KEY")
# After a key rotation: the old public keys (base64 raw, comma-separated), so old anchors verify.
PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS = env_list("PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS")
PORTAL_AUDIT_ANCHOR_EVERY = env_int("PORTAL_AUDIT_ANCHOR_EVERY", 100)  # events
PORTAL_AUDIT_ANCHOR_MINUTES = env_int("PORTAL_AUDIT_ANCHOR_MINUTES", 15)
PORTAL_AUDIT_ANCHOR_RETENTION_DAYS = env_int("PORTAL_AUDIT_ANCHOR_RETENTION_DAYS", 2557)  # 7 y
PORTAL_AUDIT_MAX_LAG = env_int("PORTAL_AUDIT_MAX_LAG", 900)  # seconds; 0: never refuse
PORTAL_AUDIT_SHIP_INTERVAL = env_float("PORTAL_AUDIT_SHIP_INTERVAL", 2.0)  # seconds
# The worker thread ships in each web process; tests ship explicitly (audit_devices.ship).
PORTAL_AUDIT_SHIP_IN_BACKGROUND = env_bool("PORTAL_AUDIT_SHIP_IN_BACKGROUND", not TESTING)
if not (PORTAL_DEMO or TESTING):
    if not PORTAL_AUDIT_SIGNING_KEY:
        raise ImproperlyConfigured(
            "Set PORTAL_AUDIT_SIGNING_KEY to an Ed25519 private key (PEM, or base64 of the raw "
            "32 bytes) kept outside the database: it signs the audit chain's anchors "
            "(production mode: PORTAL_DEMO is not set)."
        )
    if not PORTAL_AUDIT_DEVICES:
        raise ImproperlyConfigured(
            "Set PORTAL_AUDIT_DEVICES to the audit devices events are shipped to (stdout, "
            "file:/path, cloudwatch:GROUP:STREAM, s3:BUCKET/PREFIX), or to 'none' to run "
            "without any (production mode: PORTAL_DEMO is not set)."
        )

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Take SQLite's writer lock at BEGIN, so audit appends queue instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

if TESTING:
    # Personas are made per test; a slow password hash would dominate the suite's time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if PORTAL_DEMO or TESTING:
    # whitenoise serves from the finders here; an existing root keeps it from warning.
    STATIC_ROOT.mkdir(exist_ok=True)
