"""Cursor pagination for every list: ?cursor=&page_size= (default 20, 1..100).

An out-of-range or malformed page_size is a 400 naming the field, never silently clamped;
a cursor that does not decode is a 400 too (DRF's default would be a 404)."""

from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

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
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from None


def paginator_with_ordering(*fields: str) -> type[CursorPagination]:
    """A CursorPagination class ordered by the given fields (the last one must be unique)."""
    return type("OrderedCursorPagination", (CursorPagination,), {"ordering": fields})
