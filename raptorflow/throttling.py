"""Rate limits shared by every process and instance, kept in the Django cache (Redis when
REDIS_URL is set, the database cache otherwise).

Each limit is a fixed window counted with one atomic increment per request, so two
instances can never both let the N+1th request through: with Redis, cache.add then
cache.incr; without it, one INSERT … ON CONFLICT DO UPDATE … RETURNING on
the core app's RateLimitWindow table (the database cache would need a dozen statements and a
row lock per request). DRF's own
SimpleRateThrottle keeps a list of timestamps with get/set, which loses updates when
processes race. A window starts at a key's first hit and lasts the rate's period;
Retry-After is the time left in it.

Limits live in settings.RATE_LIMITS (scope -> "N/period", empty or "off" disables one):
  user                 every API request of a signed-in user, per user
  auth_ip              the sign-in and token endpoints, per client IP
  auth_account         the token endpoints, per account named by a still-valid token we signed
  admin_login_ip       POSTs to the admin login, per client IP
  admin_login_account  POSTs to the admin login, per email typed in and client IP
  admin_login_account_total
                       POSTs to the admin login, per email typed in, from any IP (a ceiling
                       high enough that failures from elsewhere do not lock its owner out)
  share_ip             GET /api/shares/{token} (share links, open to anyone), per client IP:
                       link tokens cannot be guessed, and a flood of reads stops here
"""

import random
import re
import time
from datetime import timedelta

import jwt
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection, connections
from django.db.models.expressions import RawSQL
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from raptorflow import hooks
from raptorflow.models import RateLimitWindow

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$", re.IGNORECASE)
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'100/min' -> (100, 60); '5/10s' -> (5, 10); empty or 'off' -> None (no limit)."""
    if not rate or rate.strip().lower() in {"off", "none", "0"}:
        return None
    match = _RATE_RE.match(rate)
    if not match:
        raise ValueError(f"Rate {rate!r} is not of the form N/period (period: s, min, hour, day; e.g. 5/10s)")
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * _PERIOD_SECONDS[unit[0].lower()]


def rate_for(scope: str) -> tuple[int, int] | None:
    return parse_rate(settings.RATE_LIMITS.get(scope))


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front
    (Cloud Run's front end is one), the address the outermost trusted proxy saw. The
    left-most X-Forwarded-For entries are the client's own claim and are never trusted."""
    return BaseThrottle().get_ident(request) or "unknown"


def hit(key: str, period: int) -> tuple[int, float]:
    """Counts one request against `key`; returns (requests in the current window,
    seconds left in it)."""
    cache = caches["default"]
    if isinstance(cache, DatabaseCache):
        return _hit_database(key, period)
    counter_key, start_key = f"rl:{key}", f"rl:{key}:start"
    now = time.time()
    cache.add(start_key, now, period)
    count = _incr(cache, counter_key, period)
    started = cache.get(start_key) or now
    return count, max(1.0, started + period - now)


def _incr(cache, key: str, period: int) -> int:
    for _ in range(3):
        cache.add(key, 0, period)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: start again
            continue
        if count == 1:
            # The first hit of a window sets its lifetime. This also repairs the rare
            # case of a key that expired between the backend's exists() and INCR, which
            # Redis would otherwise keep forever.
            cache.touch(key, period)
        return count
    raise RuntimeError(f"Could not count a request for {key}")


# Windows of keys nobody uses any more are deleted now and then, by the requests themselves.
_PURGE_PROBABILITY = 0.001

_WINDOWS = RateLimitWindow._meta.db_table
_UPSERT = f"""
INSERT INTO {_WINDOWS} (key, count, expires_at) VALUES (%(key)s, 1, %(expires)s)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN {_WINDOWS}.expires_at <= %(now)s THEN 1 ELSE {_WINDOWS}.count + 1 END,
    expires_at = CASE WHEN {_WINDOWS}.expires_at <= %(now)s THEN EXCLUDED.expires_at
                      ELSE {_WINDOWS}.expires_at END
RETURNING count, expires_at
"""  # noqa: S608 - the table name is our own model's, not input


def _hit_database(key: str, period: int) -> tuple[int, float]:
    """One statement: the upsert takes the row's lock, so concurrent hits serialize on it
    and each sees its own count; an expired window restarts at 1."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, {"key": key[:200], "now": now, "expires": now + timedelta(seconds=period)})
        count, expires_at = cursor.fetchone()
    _purge_now_and_then(now)
    return count, max(1.0, (expires_at - now).total_seconds())


def _purge_now_and_then(now) -> None:
    if random.random() < _PURGE_PROBABILITY:
        RateLimitWindow.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()


# The same upsert as a WITH clause in front of another query, counting only if `condition`
# (that query's own rows) has a row. Positional parameters, as the ORM's SQL after it has.
_UPSERT_IF = f"""
WITH rate_hit AS (
    INSERT INTO {_WINDOWS} (key, count, expires_at) SELECT %s, 1, %s WHERE EXISTS ({{condition}})
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN {_WINDOWS}.expires_at <= %s THEN 1 ELSE {_WINDOWS}.count + 1 END,
        expires_at = CASE WHEN {_WINDOWS}.expires_at <= %s THEN EXCLUDED.expires_at
                          ELSE {_WINDOWS}.expires_at END
    RETURNING count, expires_at
)
"""  # noqa: S608 - the table name is our own model's, the condition the ORM's SQL
_COUNTED_USER_HIT = "_raptorflow_counted_user_hit"


def first_counting_user_hit(request, user_id, queryset):
    """`queryset.first()` — authentication's one query — with the per-user rate limit's
    hit of this request in the same statement, on the database cache path: a WITH clause
    that upserts the window only if the queryset has a row (a token that no longer works
    counts against nobody). UserRateThrottle then takes that count instead of hitting
    again. With Redis, the limit off or a view without UserRateThrottle: only the query."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    rate = rate_for(UserRateThrottle.scope)
    if (
        rate is None
        or not isinstance(caches["default"], DatabaseCache)
        or not any(issubclass(throttle, UserRateThrottle) for throttle in getattr(view, "throttle_classes", ()))
    ):
        return queryset.first()
    key = f"{UserRateThrottle.scope}:{user_id}"
    now = timezone.now()
    db = connections[queryset.db]
    condition, condition_params = queryset.values("pk").query.get_compiler(connection=db).as_sql()
    prefix = _UPSERT_IF.replace("{condition}", condition)
    prefix_params = (key[:200], now + timedelta(seconds=rate[1]), *condition_params, now, now)

    def with_rate_hit(execute, sql, params, many, context):
        return execute(prefix + sql, (*prefix_params, *params), many, context)

    counted = queryset.annotate(
        rate_hit_count=RawSQL("SELECT count FROM rate_hit", ()),
        rate_hit_expires_at=RawSQL("SELECT expires_at FROM rate_hit", ()),
    )
    with db.execute_wrapper(with_rate_hit):
        row = counted.first()
    if row is not None and row.rate_hit_count is not None:
        remaining = max(1.0, (row.rate_hit_expires_at - now).total_seconds())
        setattr(request, _COUNTED_USER_HIT, (key, row.rate_hit_count, remaining))
        _purge_now_and_then(now)
    return row


class FixedWindowThrottle(BaseThrottle):
    """Base of the API's throttles: subclasses name a scope and say whom a request
    counts against (None: this throttle does not apply to the request)."""

    scope = ""

    def identity(self, request, view) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view):
        self._wait = None
        rate = rate_for(self.scope)
        if rate is None:
            return True
        identity = self.identity(request, view)
        if identity is None:
            return True
        limit, period = rate
        count, remaining = self.hit(request, f"{self.scope}:{identity}", period)
        if count > limit:
            self._wait = remaining
            return False
        return True

    def hit(self, request, key: str, period: int) -> tuple[int, float]:
        return hit(key, period)

    def wait(self):
        return self._wait


def _is_auth_endpoint(request) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name in settings.RATE_LIMITED_AUTH_VIEWS


class UserRateThrottle(FixedWindowThrottle):
    scope = "user"

    def identity(self, request, view):
        user = getattr(request, "user", None)
        return str(user.pk) if user is not None and user.is_authenticated else None

    def hit(self, request, key, period):
        # Already counted by authentication's query (first_counting_user_hit)?
        counted = getattr(request, _COUNTED_USER_HIT, None)
        if counted is not None and counted[0] == key:
            return counted[1], counted[2]
        return hit(key, period)


class AuthIpThrottle(FixedWindowThrottle):
    scope = "auth_ip"

    def identity(self, request, view):
        return client_ip(request) if _is_auth_endpoint(request) else None


class AuthAccountThrottle(FixedWindowThrottle):
    """Per account on the token endpoints (refresh, verify-token, logout): the account is
    the user a submitted token names, counted only while that token still works — our
    signature on it checks out and it has not expired (here, without I/O), and it is
    neither revoked, blacklisted nor older than a change of its membership (accounts,
    through hooks.token_is_live) — so nobody can use up another person's limit with forged
    tokens or with an old token of theirs. The Google endpoints are limited per IP only:
    their account is known only after Google verified the token."""

    scope = "auth_account"

    def identity(self, request, view):
        if not _is_auth_endpoint(request) or not isinstance(request.data, dict):
            return None
        raw = request.data.get("refresh") or request.data.get("token")
        # A JWT is ASCII; anything else (a lone surrogate would make PyJWT's encode raise) is
        # not one of ours, and the view refuses it.
        if not isinstance(raw, str) or len(raw) > 4096 or not raw.isascii():
            return None
        try:
            claims = jwt.decode(
                raw,
                settings.SIMPLE_JWT["SIGNING_KEY"],
                algorithms=[settings.SIMPLE_JWT["ALGORITHM"]],
                options={"verify_aud": False},
                leeway=settings.SIMPLE_JWT.get("LEEWAY", 0),
            )
        except jwt.PyJWTError:
            return None
        user_id = claims.get(settings.SIMPLE_JWT["USER_ID_CLAIM"])
        if not user_id or not all(hooks.token_is_live(claims)):
            return None
        return str(user_id)


class ShareLinkIpThrottle(FixedWindowThrottle):
    """Per client IP, on the views that set it (the share-link reader)."""

    scope = "share_ip"

    def identity(self, request, view):
        return client_ip(request)


def check_admin_login(request) -> None:
    """Raises Throttled when POSTs to the admin login exceed the per-IP limit, the limit
    per account and IP, or the per-account ceiling (called by
    raptorflow.admin_audit.AuditedAdminSite.login). Failures from one address do not lock
    the account out from another until the ceiling."""
    account = (request.POST.get("username") or "").strip().lower()[:254]
    ip = client_ip(request)
    limits = (
        ("admin_login_ip", ip),
        ("admin_login_account", f"{account}|{ip}" if account else ""),
        ("admin_login_account_total", account),
    )
    for scope, identity in limits:
        rate = rate_for(scope)
        if rate is None or not identity:
            continue
        limit, period = rate
        count, remaining = hit(f"{scope}:{identity}", period)
        if count > limit:
            raise Throttled(wait=remaining)
