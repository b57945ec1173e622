"""Request ids, static files, the request body limit, /health for any Host, and JSON errors
for everything Django answers outside DRF's views."""

import io
import logging
import os
import re
import uuid

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.urls import Resolver404, resolve
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from whitenoise.middleware import WhiteNoiseMiddleware

from raptorflow import audit
from raptorflow.errors import error_body
from raptorflow.request_context import set_request_id
from raptorflow.throttling import client_ip

logger = logging.getLogger("raptorflow.request")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Accepts a sane incoming X-Request-ID (from a load balancer) or makes one, and binds
    it with the client's address to the audit context of this request (raptorflow.audit):
    whatever a service records during the request carries both."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        set_request_id(request_id)
        try:
            with audit.audit_context(actor=None, ip=audit.valid_ip(client_ip(request)), request_id=request_id):
                response = self.get_response(request)
        finally:
            set_request_id("-")
        response["X-Request-ID"] = request_id
        return response


class RequestBodyLimitMiddleware:
    """Refuses a body larger than settings.DATA_UPLOAD_MAX_MEMORY_SIZE (MAX_REQUEST_BYTES)
    with a JSON 413 before anything reads it.

    A declared Content-Length is checked without reading. A chunked body (no
    Content-Length; gunicorn hands it over de-chunked) is read up to one byte past the
    limit: too long is a 413, otherwise it is kept in memory and given a Content-Length,
    so Django and DRF — which ignore bodies without one — see it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.method == "POST":
            # The few endpoints that take more (a document upload) say so in settings.
            limit = getattr(settings, "REQUEST_BODY_LIMITS_BY_PATH", {}).get(request.path_info, limit)
        if limit is not None:
            declared = request.META.get("CONTENT_LENGTH")
            if declared:
                try:
                    too_large = int(declared) > limit
                except ValueError:
                    return JsonResponse(error_body("bad_request", "Content-Length is not a number."), status=400)
                if too_large:
                    return self._too_large(limit)
            elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                body = request.META["wsgi.input"].read(limit + 1)
                if len(body) > limit:
                    return self._too_large(limit)
                request._stream = LimitedStream(io.BytesIO(body), len(body))
                request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)

    @staticmethod
    def _too_large(limit: int) -> JsonResponse:
        return JsonResponse(
            error_body("payload_too_large", f"The request body is larger than {limit} bytes.", limit=limit),
            status=413,
        )


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise (settings' static files section), without its warning about a STATIC_ROOT
    that does not exist: a checkout that never ran collectstatic has none on purpose, and in
    production mode that warning would be the one log line that is not JSON."""

    def add_files(self, root, prefix=None):
        if str(root) == str(settings.STATIC_ROOT) and not os.path.isdir(root):
            return
        super().add_files(root, prefix)


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's CommonMiddleware, except that /health skips the Host check (ALLOWED_HOSTS)
    that CommonMiddleware is the first to make.

    Health probes do not send the public domain: Docker's and compose's HEALTHCHECK call
    127.0.0.1:$PORT, Cloud Run's startup and liveness probes and Kubernetes' send the
    instance's own address or service URL. With ALLOWED_HOSTS=api.example.com each of them
    would get a 400 and take a healthy instance out of rotation. Accepting any Host here is
    safe: /health's answer neither depends on the Host nor repeats it (no absolute URL, no
    redirect — SECURE_REDIRECT_EXEMPT — no cookie), so there is nothing to poison. It is not
    limited to loopback because Cloud Run's probes need not come from it. Every other path
    still refuses an unknown Host with a 400."""

    def process_request(self, request):
        if request.path_info == "/health":
            return None
        return super().process_request(request)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path in {"/api", "/health", "/metrics"}


class JsonErrorsMiddleware:
    """Under /api/, errors Django itself produces (unknown route, 405 from a plain view,
    an unexpected exception) are answered as JSON in the API's error shape, never HTML; the
    database or the cache being down is a 503 with Retry-After there and everywhere else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_api_path(request.path) or response.status_code < 400:
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json") or content_type.startswith("text/event-stream"):
            return response
        return self._as_json(response, request)

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return self._unavailable_page(request, exception)
        if isinstance(exception, OperationalError | InterfaceError):
            # The database is unreachable or dropped the connection (a restart, a failover): a
            # dependency down, not a bug. The client sends the request again in a moment (a
            # message with the same Idempotency-Key, in case its commit got through).
            logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exception)
            response = JsonResponse(
                error_body("database_unavailable", "The database is unavailable; retry in a moment."), status=503
            )
            response["Retry-After"] = "1"
            return response
        if isinstance(exception, RedisConnectionError | RedisTimeoutError):
            # Redis (REDIS_URL: the cache behind token revocation and rate limits) is down or
            # too slow. Serving without it would skip revocation and limits, so refuse briefly
            # instead, as for the database; /health shows it as a degraded cache.
            logger.warning("Cache unavailable on %s %s: %s", request.method, request.path, exception)
            response = JsonResponse(
                error_body("cache_unavailable", "The cache is unavailable; retry in a moment."), status=503
            )
            response["Retry-After"] = "5"
            return response
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        message = "Internal server error." if not settings.DEBUG else f"{type(exception).__name__}: {exception}"
        return JsonResponse(error_body("server_error", message), status=500)

    @staticmethod
    def _unavailable_page(request, exception):
        """Outside the API (the admin, the docs) a dependency that is down is a plain 503
        with Retry-After too, not a server error page: the operator retries in a moment.
        Anything else is left to Django's own 500 handling."""
        if isinstance(exception, OperationalError | InterfaceError):
            which, retry = "database", "1"
        elif isinstance(exception, RedisConnectionError | RedisTimeoutError):
            which, retry = "cache", "5"
        else:
            return None
        logger.warning("%s unavailable on %s %s: %s", which.capitalize(), request.method, request.path, exception)
        response = HttpResponse(
            f"RaptorFlow's {which} is unavailable; retry in a moment.\n", status=503, content_type="text/plain"
        )
        response["Retry-After"] = retry
        return response

    @staticmethod
    def _as_json(response, request=None):
        status = response.status_code
        code, message = {
            400: ("bad_request", "Bad request."),
            404: ("not_found", _not_found_message(request)),
            405: ("method_not_allowed", "Method not allowed."),
            413: ("payload_too_large", "The request body is too large."),
        }.get(status, ("server_error" if status >= 500 else "error", response.reason_phrase or "Error."))
        json_response = JsonResponse(error_body(code, message), status=status)
        for header in ("Allow", "Retry-After"):
            if header in response:
                json_response[header] = response[header]
        return json_response


def _not_found_message(request) -> str:
    """"Not found.", or for an API path with a trailing slash whose slash-less twin exists
    (APPEND_SLASH is off: the API's paths have none), a pointer to that path."""
    path = getattr(request, "path_info", "")
    bare = path.rstrip("/")
    if bare == path or not is_api_path(bare):
        return "Not found."
    try:
        resolve(bare, urlconf=getattr(request, "urlconf", None))
    except Resolver404:
        return "Not found."
    return f"No such endpoint. Did you mean {request.path.rstrip('/')}?"


def json_handler404(request, exception=None):
    return JsonResponse(error_body("not_found", _not_found_message(request)), status=404)


def json_handler500(request):
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)


def json_handler400(request, exception=None):
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)

