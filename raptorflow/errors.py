"""One error shape for the whole API.

Every error leaves as {"error": {"code", "message", "fields"?, ...extra}}. Services and
selectors raise the DomainError subclasses below (plain exceptions, no HTTP in them) or
Django's ValidationError; views and DRF raise DRF's exceptions; `exception_handler` maps all
of them to that one shape. Views never build error bodies.
"""

import logging

from django.core import exceptions as django_exceptions
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """An error of the product's own rules, raised by services and selectors (which know
    nothing of HTTP). `code` is stable and machine-readable, `extra` is merged into the
    error body; the status each class maps to is the handler's business, kept here beside
    it so there is one table to read."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "Bad request."

    def __init__(self, message: str | None = None, *, code: str | None = None, **extra):
        self.message = message or self.default_detail
        self.code = code or self.default_code
        self.extra = extra
        super().__init__(self.message)

    @property
    def detail(self) -> str:
        return self.message


class InvalidInput(DomainError):
    """Input a service refuses after the serializer accepted it, naming each field:
    InvalidInput({"domain": ["Consumer email domains cannot be claimed."]})."""

    default_code = "validation_error"
    default_detail = "Invalid input."

    def __init__(self, fields: dict[str, list[str]] | str, *, code: str | None = None, **extra):
        if isinstance(fields, str):
            super().__init__(fields, code=code, fields={}, **extra)
        else:
            message = "Invalid input: " + ", ".join(sorted(fields)) + "."
            super().__init__(message, code=code, fields={k: list(v) for k, v in fields.items()}, **extra)


class NotFound(DomainError):
    """Does not exist, or is not the caller's: the same answer for both."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class PermissionDenied(DomainError):
    """The caller's role in their own organization is too low for this action."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"
    default_detail = "Your role in this organization does not allow this action."


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."


class PaymentRequired(DomainError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_code = "quota_exceeded"
    default_detail = "The organization's plan quota is exhausted."


class UpstreamBadResponse(DomainError):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "upstream_bad_response"
    default_detail = "An upstream service answered with something unusable."


class UpstreamUnavailable(DomainError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "upstream_unavailable"
    default_detail = "An upstream service is unavailable."


class NotConfigured(UpstreamUnavailable):
    default_code = "not_configured"
    default_detail = "This feature is not configured on this server."


_CODES_BY_CLASS = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _flatten_messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten_messages(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten_messages(value)]
    return [str(detail)]


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, django_exceptions.PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, django_exceptions.ValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )

    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, **exc.extra), status=exc.status_code)

    if not isinstance(exc, exceptions.APIException):
        # Unexpected: let Django log it and answer 500 through the JSON middleware.
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait) + (0 if exc.wait == int(exc.wait) else 1))

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = {key: _flatten_messages(value) for key, value in detail.items()}
            non_field = fields.pop("non_field_errors", None)
            message = non_field[0] if non_field else "Invalid input: " + ", ".join(sorted(fields)) + "."
            body = error_body("validation_error", message, fields=fields)
        else:
            messages = _flatten_messages(detail)
            body = error_body("validation_error", messages[0] if messages else "Invalid input.", fields={})
    else:
        # A specific code given where the exception was raised wins over the class's.
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else None
        if code is None or code == exc.default_code:
            code = next((c for cls, c in _CODES_BY_CLASS.items() if isinstance(exc, cls)), code or "error")
        message = " ".join(_flatten_messages(exc.detail))
        body = error_body(code, message)

    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)
