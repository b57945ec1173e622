"""Scoping that cannot be forgotten (STYLE.md §2, SPEC §5): the rules of raptorflow.tenancy and
raptorflow.api checked over the whole project rather than endpoint by endpoint.

- Every URL: a DRF view is a TenantAPIView (authenticated, scoped), or one of the few public
  views below — and then really public. Non-DRF views are the Django admin and /metrics.
- Every model with an organization declares its tenant_scope on a TenantQuerySet manager,
  and scoped() on it filters by the caller.
- A TenantAPIView cannot replace the methods that scope (TypeError when the class is defined).
- The views' source never reaches a tenant model's manager around scoped().
"""

import ast
import importlib
import inspect
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts.authentication import TenantJWTAuthentication
from accounts.models import Organization, User
from accounts.views import auth as auth_views
from billing.views import RazorpayWebhookView
from conversations.models import Conversation
from conversations.share_views import SharedConversationView
from raptorflow.api import TenantAPIView
from raptorflow.health import HealthView
from raptorflow.metrics_view import metrics_view
from raptorflow.tenancy import TenantQuerySet, TenantScope, is_visible, scoped
from raptorflow.views import RootView

PROJECT_APPS = ("raptorflow", "accounts", "billing", "conversations", "search", "documents", "rag")
ROOT = Path(__file__).resolve().parent.parent

# DRF views anyone may call. Keep it short: everything else is a TenantAPIView.
PUBLIC_VIEWS = {
    # Probed by the load balancer and Cloud Run without credentials; says nothing about tenants.
    HealthView: "liveness/readiness probe",
    # GET / points a visitor at the docs; it reads nothing.
    RootView: "points at /docs",
    # Signing in is how a caller gets a token in the first place.
    auth_views.GoogleLoginView: "starts Google sign-in",
    auth_views.GoogleCallbackView: "Google's redirect back after sign-in",
    auth_views.GoogleIdTokenView: "exchanges a Google ID token for our tokens",
    # Both take the token in the body and check it themselves (accounts.tokens).
    auth_views.RefreshView: "refresh token in the body",
    auth_views.VerifyTokenView: "access token in the body",
    # Razorpay calls it without a token; the body's HMAC signature authenticates it.
    RazorpayWebhookView: "authenticated by X-Razorpay-Signature",
    # A share link: its random token is the credential (only its hash is stored); public links
    # open for anyone while the organization allows them, organization links only for a
    # signed-in member (an optional bearer token); anything else is the same 404.
    SharedConversationView: "share link, the token in the path is its credential",
    # The OpenAPI description and its two viewers are public documentation, no data.
    SpectacularAPIView: "OpenAPI schema",
    SpectacularSwaggerSplitView: "Swagger UI (its init script a separate file, for the CSP)",
    SpectacularRedocView: "ReDoc",
}

# Plain Django views (not DRF) outside the admin, each with its own guard.
NON_DRF_VIEWS = {
    # Bearer METRICS_TOKEN, compared in constant time; 503 while it is unset in production.
    metrics_view: "Prometheus scrape endpoint",
}
# Every view under this namespace is Django's admin: staff sessions, AdminSite.admin_view.
ADMIN_NAMESPACE = "admin"

# Models that point at an organization but are not served through scoped(): say why.
UNSCOPED_MODELS = {
    # The tenant itself: a caller reaches organizations through their memberships
    # (accounts.selectors.organizations_of_user) and the token's own organization.
    "accounts.Organization": "the tenant itself",
    # Admin-only proxy of Organization with embedding counts (search/admin.py).
    "search.EmbeddingCoverage": "admin proxy of the tenant",
    # A person belongs to many organizations; default_organization is only where a fresh
    # sign-in lands, and users are read through Membership, which is scoped.
    "accounts.User": "default_organization is a preference, not ownership",
}

# Views modules allowed to name a tenant model's manager, with the reason. Empty today.
VIEWS_MANAGER_ALLOWED: dict[tuple[str, str], str] = {}

MANAGER_ATTRIBUTES = {"objects", "_default_manager", "_base_manager"}
HAND_SCOPING_METHODS = {"for_org", "visible_to", "shared_or_mine"}


# --- every URL ---------------------------------------------------------------------------


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback, namespace


def _anonymous_request():
    # No authenticators: request.user becomes UNAUTHENTICATED_USER, as for a request without a token.
    return Request(APIRequestFactory().get("/"), authenticators=[])


def _allows_anonymous(view_class) -> bool:
    request, view = _anonymous_request(), view_class()
    return all(permission().has_permission(request, view) for permission in view_class.permission_classes)


def scoping_violations(patterns) -> list[str]:
    """What breaks the rules among `patterns` (a URLconf's urlpatterns)."""
    problems = []
    for route, callback, namespace in _walk(patterns):
        view_class = getattr(callback, "view_class", None)
        is_drf = isinstance(view_class, type) and issubclass(view_class, APIView)
        if not is_drf:
            if namespace != ADMIN_NAMESPACE and callback not in NON_DRF_VIEWS:
                problems.append(f"{route}: a plain Django view outside the admin; make it a TenantAPIView")
            continue
        if namespace == ADMIN_NAMESPACE:
            problems.append(f"{route}: a DRF view under the admin namespace")
        elif issubclass(view_class, TenantAPIView):
            if _allows_anonymous(view_class):
                problems.append(f"{route}: {view_class.__name__} is a TenantAPIView open to anonymous callers")
            if not any(issubclass(a, TenantJWTAuthentication) for a in view_class.authentication_classes):
                problems.append(f"{route}: {view_class.__name__} does not authenticate with TenantJWTAuthentication")
        elif view_class in PUBLIC_VIEWS:
            if not _allows_anonymous(view_class):
                problems.append(f"{route}: {view_class.__name__} is on the public allow-list but not public")
        else:
            problems.append(
                f"{route}: {view_class.__module__}.{view_class.__name__} is neither a TenantAPIView nor on the "
                "public allow-list of tests/test_scoping_rules.py"
            )
    return problems


def test_every_url_is_served_by_a_tenant_view_or_an_allowed_public_one():
    routed = [getattr(cb, "view_class", None) for _, cb, _ in _walk(get_resolver().url_patterns)]
    # Guards the walk itself: the product's endpoints are found, not just the admin.
    assert sum(isinstance(v, type) and issubclass(v, TenantAPIView) for v in routed) >= 30

    assert scoping_violations(get_resolver().url_patterns) == []


def test_every_allow_listed_view_is_routed():
    routed = {getattr(callback, "view_class", callback) for _, callback, _ in _walk(get_resolver().url_patterns)}
    assert set(PUBLIC_VIEWS) - routed == set()
    assert {getattr(v, "view_class", v) for v in NON_DRF_VIEWS} - routed == set()


def test_admin_urls_are_the_admin_sites_own():
    # The admin namespace is exempt from the rules above: make sure it holds only Django's admin.
    admin_routes = [(route, cb) for route, cb, ns in _walk(get_resolver().url_patterns) if ns == ADMIN_NAMESPACE]
    assert admin_routes
    assert all(route.startswith("admin/") for route, _ in admin_routes)
    assert not [route for route, cb in admin_routes if isinstance(getattr(cb, "view_class", None), type)
                and issubclass(cb.view_class, APIView)]


def test_a_new_authenticated_view_that_is_not_a_tenant_view_is_caught():
    class ForgottenView(APIView):
        permission_classes = [IsAuthenticated]

    class OpenedTenantView(TenantAPIView):
        permission_classes: list = []

    problems = scoping_violations(
        [path("api/forgotten", ForgottenView.as_view()), path("api/opened", OpenedTenantView.as_view())]
    )

    assert len(problems) == 2
    assert "api/forgotten: " in problems[0] and "neither a TenantAPIView" in problems[0]
    assert "api/opened: OpenedTenantView is a TenantAPIView open to anonymous callers" in problems[1]


def test_an_allow_listed_view_that_requires_a_token_is_caught(monkeypatch):
    monkeypatch.setattr(HealthView, "permission_classes", [IsAuthenticated])

    assert scoping_violations([path("health", HealthView.as_view())]) == [
        "health: HealthView is on the public allow-list but not public"
    ]


# --- every model with an organization ----------------------------------------------------


def _project_models():
    return [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS]


def _points_at_an_organization(model) -> bool:
    if issubclass(model, Organization):
        return True
    return any(
        (field.is_relation and field.many_to_one and field.related_model is Organization)
        or field.name == "organization_id"
        for field in model._meta.concrete_fields
    )


TENANT_MODELS = [m for m in _project_models() if _points_at_an_organization(m)]


def test_the_project_has_tenant_models():
    # Guards the walk itself: an empty list would pass every test below.
    assert {"conversations.Message", "accounts.Membership", "billing.Subscription"} <= {
        m._meta.label for m in TENANT_MODELS
    }


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m._meta.label)
def test_every_model_with_an_organization_declares_its_tenant_scope(model):
    if model._meta.label in UNSCOPED_MODELS:
        return
    assert isinstance(getattr(model, "tenant_scope", None), TenantScope), (
        f"{model._meta.label} points at an organization: declare tenant_scope (raptorflow.tenancy.TenantScope) "
        "or add it, with the reason, to UNSCOPED_MODELS"
    )
    assert isinstance(model._default_manager.get_queryset(), TenantQuerySet)
    assert isinstance(model.objects.get_queryset(), TenantQuerySet)


@pytest.mark.parametrize(
    "model", [m for m in TENANT_MODELS if m._meta.label not in UNSCOPED_MODELS], ids=lambda m: m._meta.label
)
def test_scoped_filters_by_the_callers_organization_and_owner(model):
    organization, user = Organization(pk=uuid.uuid4()), User(pk=uuid.uuid4())
    organization._state.adding = user._state.adding = False  # as if loaded; no database needed

    sql = str(scoped(model, user=user, organization=organization).query)

    assert organization.pk.hex in sql.replace("-", "")
    assert (user.pk.hex in sql.replace("-", "")) is (model.tenant_scope in (TenantScope.OWNER, TenantScope.SHARED))
    # A shared row is read by the organization's members when it says so, never beyond it.
    assert ("visibility" in sql) is (model.tenant_scope is TenantScope.SHARED)


def test_the_unscoped_allow_list_names_only_models_that_need_it():
    labels = {m._meta.label for m in TENANT_MODELS}
    assert set(UNSCOPED_MODELS) <= labels
    assert all(not isinstance(getattr(apps.get_model(label), "tenant_scope", None), TenantScope)
               for label in UNSCOPED_MODELS)


def test_scoped_refuses_a_model_without_a_scope_and_an_owner_model_without_a_user():
    from billing.models import Plan
    from rag.models import ProviderKey

    organization = Organization(pk=uuid.uuid4())
    organization._state.adding = False

    with pytest.raises(TypeError, match="declares no tenant_scope"):
        scoped(Plan, user=None, organization=organization)
    with pytest.raises(TypeError, match="needs the user"):
        scoped(Conversation, user=None, organization=organization)
    assert organization.pk.hex in str(scoped(ProviderKey, user=None, organization=organization).query).replace("-", "")


def test_is_visible_answers_like_scoped_without_a_query():
    # No database fixture: pytest-django refuses any query, so none is made.
    organization, other_organization = Organization(pk=uuid.uuid4()), Organization(pk=uuid.uuid4())
    owner, teammate = User(pk=uuid.uuid4()), User(pk=uuid.uuid4())
    conversation = Conversation(organization_id=organization.pk, owner_id=owner.pk)

    assert is_visible(conversation, user=owner, organization=organization)
    assert not is_visible(conversation, user=teammate, organization=organization)
    assert not is_visible(conversation, user=owner, organization=other_organization)
    assert not is_visible(conversation, user=None, organization=organization)


# --- TenantAPIView cannot be told to stop scoping ----------------------------------------


@pytest.mark.parametrize("name", TenantAPIView.SEALED)
def test_a_tenant_view_that_overrides_a_scoping_method_fails_when_defined(name):
    with pytest.raises(TypeError, match=f"overrides TenantAPIView.{name}.*filter_scoped"):
        type("SneakyView", (TenantAPIView,), {name: lambda self: None})


@pytest.mark.parametrize("name", ["get_queryset", "get_object"])
def test_a_mixin_that_overrides_get_queryset_or_get_object_fails_too(name):
    mixin = type("SneakyMixin", (), {name: lambda self: None})

    with pytest.raises(TypeError, match=f"overrides TenantAPIView.{name}"):
        type("SneakyView", (mixin, TenantAPIView), {})


def test_a_tenant_view_refines_its_scoped_rows_in_filter_scoped():
    class ArchivedView(TenantAPIView):
        model = Conversation

        def filter_scoped(self, queryset):
            return queryset.filter(status="archived")

    organization, user = Organization(pk=uuid.uuid4()), User(pk=uuid.uuid4())
    organization._state.adding = user._state.adding = False
    view = ArchivedView()
    view.request = SimpleNamespace(user=user, auth=SimpleNamespace(organization=organization))

    sql = str(view.get_queryset().query).replace("-", "")

    assert organization.pk.hex in sql and user.pk.hex in sql and "archived" in sql


# --- the views' source -------------------------------------------------------------------


def _views_modules() -> list[str]:
    names = []
    for app in PROJECT_APPS:
        if (ROOT / app / "views.py").exists():
            names.append(f"{app}.views")
        names += sorted(f"{app}.views.{p.stem}" for p in (ROOT / app / "views").glob("*.py") if p.stem != "__init__")
        # Views of one feature kept beside views.py (conversations/share_views.py).
        names += sorted(f"{app}.{p.stem}" for p in (ROOT / app).glob("*_views.py"))
    return names


VIEWS_MODULES = _views_modules()


def _resolve(node, namespace):
    """The object a Name or dotted Attribute refers to in the module's globals, or None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _is_tenant_model(obj) -> bool:
    return (
        isinstance(obj, type)
        and obj in apps.get_models(include_auto_created=True)
        and (isinstance(getattr(obj, "tenant_scope", None), TenantScope) or _points_at_an_organization(obj))
    )


def views_manager_violations(module) -> list[str]:
    tree = ast.parse(inspect.getsource(module))
    namespace = vars(module)
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        where = f"{module.__name__}:{node.lineno}"
        if node.attr in MANAGER_ATTRIBUTES:
            target = _resolve(node.value, namespace)
            known_plain_model = (
                isinstance(target, type) and target in apps.get_models() and not _is_tenant_model(target)
            )
            name = ast.unparse(node.value)
            if not known_plain_model and (module.__name__, name) not in VIEWS_MANAGER_ALLOWED:
                problems.append(f"{where}: {name}.{node.attr} reaches rows around scoped(); use self.scoped({name})")
        elif node.attr in HAND_SCOPING_METHODS:
            problems.append(f"{where}: .{node.attr}() scopes by hand; use self.get_queryset() or self.scoped(Model)")
    return problems


def test_the_views_modules_are_found():
    assert {
        "conversations.views",
        "conversations.share_views",
        "conversations.feedback_views",
        "accounts.views.organizations",
        "rag.views",
        "billing.views",
    } <= set(VIEWS_MODULES)


@pytest.mark.parametrize("module_name", VIEWS_MODULES)
def test_views_never_reach_a_tenant_model_around_scoped(module_name):
    assert views_manager_violations(importlib.import_module(module_name)) == []


def test_the_source_check_catches_a_manager_and_hand_scoping(tmp_path, monkeypatch):
    source = (
        "from conversations.models import Conversation\n"
        "def get(self):\n"
        "    a = Conversation.objects.filter(owner=self.request.user)\n"
        "    b = self.model._default_manager.all()\n"
        "    return a, b, self.scoped(Conversation).visible_to(None, None)\n"
    )
    (tmp_path / "sneaky_views.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))

    problems = views_manager_violations(importlib.import_module("sneaky_views"))

    assert [p.split(": ", 1)[0] for p in problems] == ["sneaky_views:3", "sneaky_views:4", "sneaky_views:5"]
