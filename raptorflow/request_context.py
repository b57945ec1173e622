"""The current request's id, kept per thread so every log line can carry it.

Kept free of Django imports: logging is configured from it before apps are loaded."""

import contextlib
import logging
import threading

_local = threading.local()


def current_request_id() -> str:
    return getattr(_local, "request_id", "-")


def set_request_id(value: str) -> None:
    _local.request_id = value


@contextlib.contextmanager
def request_id_of(context):
    """Log lines inside the block carry `context.request_id` (a job's, its request's)."""
    previous = current_request_id()
    set_request_id(getattr(context, "request_id", "") or previous)
    try:
        yield
    finally:
        set_request_id(previous)


class RequestIdLogFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record):
        # django.request logs a 4xx/5xx after the middleware finished (and reset the id),
        # with the request attached: take the id from there.
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or current_request_id()
        return True
