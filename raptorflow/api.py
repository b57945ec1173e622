"""Base classes every API view and input serializer builds on.

TenantAPIView resolves the caller from the access token (TenantJWTAuthentication has
already re-checked the user and the membership) and exposes `scoped(Model)`, the only way
views reach tenant rows (raptorflow.tenancy). `get_object()` therefore answers 404 alike
for "does not exist" and "not yours".

The rules, and where they hold:
- Every authenticated view is a TenantAPIView; a public one (sign-in, webhook, health,
  schema) is an APIView with `permission_classes = [AllowAny]` on the allow-list of
  tests/test_scoping_rules.py, which walks every URL.
- A view sets `model` and reads through `self.get_queryset()` / `self.get_object()`; it
  refines its rows in `filter_scoped(queryset)` (annotations, select_related, narrower
  filters: it receives the scoped queryset and builds on it) and reaches other models with
  `self.scoped(Other)` / `self.get_scoped_or_404(Other, ...)`. Overriding the methods that
  scope (`get_queryset`, `get_object`, `scoped`, ...) is a TypeError when the class is
  defined, so it fails at import.
- A view never names `<TenantModel>.objects`: tests/test_scoping_rules.py reads the views'
  source to hold that line. Reads that are not about one organization (the caller's own
  organizations, the plan catalogue) call their selector without `model`.
- Query parameters the view's OpenAPI operation does not list are a 400 naming each, as
  unknown body fields are (KnownQueryParametersOnly, a base of TenantAPIView and of the
  public views' base): a mistyped `?conversation_idd=` must not silently widen a search.
"""

import threading
from functools import cache

from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers

from raptorflow import audit
from raptorflow.tenancy import scoped


@cache
def _endpoints() -> dict:
    """(view class, method) -> (path, path_regex, callback), as the schema generator sees them."""
    from drf_spectacular.generators import EndpointEnumerator

    return {
        (callback.cls, method): (path, path_regex, callback)
        for path, path_regex, method, callback in EndpointEnumerator().get_api_endpoints()
    }


_accepted: dict[tuple[type, str], frozenset[str]] = {}
# drf-spectacular is not thread-safe while it first loads its extensions (one thread can
# see another's half-loaded class): one view's operation is generated at a time.
_accepted_lock = threading.Lock()


def accepted_query_parameters(view_class: type, method: str) -> frozenset[str]:
    """The query parameters of the view's operation in the OpenAPI schema (its @extend_schema
    parameters, filterset, pagination), computed once per view and method by the same
    generator that serves /api/schema, so the check and the documentation cannot drift."""
    key = (view_class, method)
    if key not in _accepted:
        with _accepted_lock:
            if key not in _accepted:
                _accepted[key] = _operation_query_parameters(view_class, method)
    return _accepted[key]


def _operation_query_parameters(view_class: type, method: str) -> frozenset[str]:
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.settings import spectacular_settings

    endpoint = _endpoints().get((view_class, method))
    if endpoint is None:
        return frozenset()
    path, path_regex, callback = endpoint
    generator = SchemaGenerator()
    view = generator.create_view(callback, method)
    view.request = spectacular_settings.GET_MOCK_REQUEST(method, path, view, None)
    operation = view.schema.get_operation(path, path_regex, "^/api", method, generator.registry) or {}
    return frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")


class KnownQueryParametersOnly:
    """Mixin for APIViews: before the handler runs, a query parameter that the view's
    operation does not document is a 400 `validation_error` naming it. A view that must
    take parameters it cannot list (an OAuth redirect target) sets
    `refuse_unknown_query_parameters = False`."""

    refuse_unknown_query_parameters = True

    def initial(self, request, *args, **kwargs):
        # First: before content negotiation, which would read DRF's `?format=` (not one of the
        # API's parameters: a 400 like any other), and before authentication (the accepted
        # parameters are public, in the schema).
        self.refuse_unknown_query_parameters_of(request)
        super().initial(request, *args, **kwargs)

    def refuse_unknown_query_parameters_of(self, request):
        # OPTIONS (CORS preflight, metadata) acts on no parameter; HEAD is GET's operation; a
        # method the view has no handler for is DRF's 405.
        if not self.refuse_unknown_query_parameters or not request.query_params or request.method == "OPTIONS":
            return
        if request.method.lower() not in self.http_method_names or not hasattr(self, request.method.lower()):
            return
        method = "GET" if request.method == "HEAD" else request.method
        unknown = sorted(set(request.query_params) - accepted_query_parameters(type(self), method))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown query parameter."] for name in unknown})


class TenantAPIView(KnownQueryParametersOnly, generics.GenericAPIView):
    """Base for every authenticated endpoint. Subclasses set `model` (a tenant-scoped
    model) and use `self.get_queryset()` / `self.get_object()` or `self.scoped(Other)`."""

    model = None
    lookup_field = "id"
    lookup_url_kwarg = "id"

    # The scoping itself: a subclass that replaced one of these could serve rows of
    # another caller, so defining such a subclass fails (see __init_subclass__).
    SEALED = ("get_queryset", "get_object", "scoped", "get_scoped_or_404", "caller", "organization")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in TenantAPIView.SEALED:
            if getattr(cls, name) is not getattr(TenantAPIView, name):
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__} overrides TenantAPIView.{name}, which scopes its rows "
                    "to the caller. Set `model` and refine the scoped rows in `filter_scoped(self, queryset)`, "
                    "reach other models through `self.scoped(Model)` or `self.get_scoped_or_404(Model, ...)`, "
                    "or call a selector for reads that are not about one organization."
                )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Authenticated by now: what services record during this request names the caller.
        audit.set_actor(request.user)

    @property
    def caller(self):
        """The accounts.authentication.Caller of this request."""
        return self.request.auth

    @property
    def organization(self):
        return self.caller.organization

    def scoped(self, model):
        return scoped(model, user=self.request.user, organization=self.caller.organization)

    def get_queryset(self):
        if self.model is None:
            raise TypeError(f"{type(self).__name__} must set `model`")
        if getattr(self, "swagger_fake_view", False):
            # Schema generation runs views without a caller.
            return self.filter_scoped(self.model.objects.none())
        return self.filter_scoped(self.scoped(self.model))

    def filter_scoped(self, queryset):
        """Hook for subclasses: the caller's rows of `model`, refined (annotations,
        select_related, narrower filters). It receives the scoped queryset and must build
        on it, never start again from `Model.objects`."""
        return queryset

    def get_scoped_or_404(self, model, **lookup):
        return get_object_or_404(self.scoped(model), **lookup)


def validated(serializer_class, data, **kwargs) -> dict:
    """The validated data of `data`, or a 400 naming each bad field."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StrictSerializer(serializers.Serializer):
    """Input serializer that rejects unknown and read-only fields instead of ignoring them,
    so a client never believes it changed something it did not."""

    def to_internal_value(self, data):
        unknown_errors = {}
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refusal = ["This field is not accepted here (unknown or read-only)."]
            unknown_errors = {name: refusal for name in sorted(set(data) - writable)}
            # DRF's CharField turns a JSON number into its text; the schema says string.
            unknown_errors.update(
                {
                    name: ["Not a valid string."]
                    for name, field in self.fields.items()
                    if isinstance(field, serializers.CharField) and isinstance(data.get(name), int | float)
                }
            )
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Report unknown fields together with the other problems, in one answer.
            if isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown_errors}) from None
            raise
        if unknown_errors:
            raise serializers.ValidationError(unknown_errors)
        return value


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass
