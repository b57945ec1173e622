"""Cursor pagination for every list: ?cursor=&page_size= (default 20, 1..100).

An out-of-range or malformed page_size is a 400 naming the field, never silently clamped;
a cursor that does not decode is a 400 `invalid_cursor` too (DRF's default would be a 404),
and so is one that decodes to a position the ordering field cannot hold (`p=abc` for a
timestamp, `p=1e400` for an integer, a NUL): DRF would hand it to the database and fail
with a 500."""

import math
from decimal import Decimal

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

from raptorflow.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def bounded_int_param(request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Reads an integer query parameter, refusing anything outside [minimum, maximum]."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"Must be an integer between {minimum} and {maximum}."]}) from None
    if not minimum <= value <= maximum:
        raise ValidationError({name: [f"Must be between {minimum} and {maximum}."]})
    return value


class CursorPagination(pagination.CursorPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-created_at"

    def get_page_size(self, request):
        return bounded_int_param(
            request, self.page_size_query_param, default=self.page_size, minimum=1, maximum=self.max_page_size
        )

    def get_paginated_response_schema(self, schema):
        # next/previous are always present (null at the ends): say so, so a generated
        # client does not type them as optional.
        response = super().get_paginated_response_schema(schema)
        response["required"] = ["next", "previous", "results"]
        return response

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        # decode_cursor checks the position against the ordering field of these rows.
        self._queryset = queryset
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise InvalidInput({"cursor": ["Invalid cursor."]}, code="invalid_cursor") from None

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            field = _ordering_field(self._queryset, self.ordering[0].lstrip("-"))
            if not _holds(field, cursor.position):
                raise NotFound(self.invalid_cursor_message)
        return cursor


def _ordering_field(queryset, name: str) -> models.Field:
    try:
        return queryset.model._meta.get_field(name)
    except FieldDoesNotExist:
        return queryset.query.annotations[name].output_field


def _holds(field: models.Field, position: str) -> bool:
    """Whether a cursor position is a value `field` can hold, as the database will be asked
    to compare it (DRF writes positions with str(), so timestamps carry their offset)."""
    if "\x00" in position:
        return False
    try:
        if isinstance(field, models.DateTimeField):
            value = parse_datetime(position)
            return value is not None and timezone.is_aware(value)
        value = field.clean(position, None)  # its type, choices and range
    except (DjangoValidationError, ValueError, TypeError, OverflowError):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return value is not None


def paginator_with_ordering(*fields: str) -> type[CursorPagination]:
    """A CursorPagination class ordered by the given fields (the last one must be unique)."""
    return type("OrderedCursorPagination", (CursorPagination,), {"ordering": fields})
