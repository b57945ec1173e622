"""Tenant scoping: the one place that decides which rows a caller may touch.

Every tenant-owned model uses a manager built from TenantQuerySet and declares its scope:
- OWNER: conversation data (conversations, messages, embeddings, context), private to the
  (organization, owner) pair; selected with `.visible_to(user, organization)`.
- ORGANIZATION: org-level rows (members, invitations, billing), selected with `.for_org(org)`.
- SHARED: rows a person owns and may share with their organization (documents and what is
  derived from them): visible to the owner, and to every member when their `visibility` is
  `organization`; selected with `.shared_or_mine(user, organization)`.

`scoped(Model, user=..., organization=...)` below picks the right one from the model and is
the entry point for every read made for a caller: raptorflow.api.TenantAPIView calls it for
the views, and the RAG code (rag.context, rag.pipeline, rag.replies) and the search
selectors call it with the caller they were given. Nothing filters by tenant by hand; an
object already in hand is checked with `is_visible()`, which answers as `scoped()` would.

Code that must bypass scoping (admin, management commands, background jobs) uses
`Model.objects` explicitly and names its function `unscoped_…`.

Where the rules are enforced:
- `scoped()` refuses a model that declares no `tenant_scope`;
- TenantAPIView refuses, at import, a view that overrides `get_queryset`/`get_object`;
- tests/test_scoping_rules.py walks every URL (each authenticated view is a TenantAPIView,
  each public one is on a commented allow-list and really public), checks that every model
  with an organization declares its scope on a TenantQuerySet manager, and reads the views'
  source so that none reaches `<TenantModel>.objects` around `scoped()`.
"""

from enum import Enum

from django.core.exceptions import FieldDoesNotExist
from django.db import models


class TenantScope(Enum):
    OWNER = "owner"
    ORGANIZATION = "organization"
    SHARED = "shared"


# The `visibility` value of a SHARED row every member of its organization may read.
SHARED_WITH_ORGANIZATION = "organization"


class TenantQuerySet(models.QuerySet):
    # Field names, overridable per model when the path is not direct.
    organization_field = "organization"
    owner_field = "owner"

    def for_org(self, organization):
        return self.filter(**{self.organization_field: organization})

    def visible_to(self, user, organization):
        return self.filter(**{self.organization_field: organization, self.owner_field: user})

    visibility_field = "visibility"

    def shared_or_mine(self, user, organization):
        """The organization's rows the user owns, and those shared with the organization."""
        return self.filter(**{self.organization_field: organization}).filter(
            models.Q(**{self.owner_field: user}) | models.Q(**{self.visibility_field: SHARED_WITH_ORGANIZATION})
        )


def tenant_scope_of(model) -> TenantScope:
    """The model's declared scope; a model without one is refused so that a new model cannot
    be exposed unscoped by accident."""
    scope = getattr(model, "tenant_scope", None)
    if not isinstance(scope, TenantScope):
        raise TypeError(f"{model.__name__} declares no tenant_scope and cannot be served by the API")
    return scope


def scoped(model, *, user, organization) -> models.QuerySet:
    """All rows of `model` the caller may see. `user` may be None only for models scoped to
    the organization (a background job acting for an organization, not for a person)."""
    scope = tenant_scope_of(model)
    if scope is TenantScope.ORGANIZATION:
        return model.objects.for_org(organization)
    if user is None:
        raise TypeError(f"{model.__name__} rows belong to a person: scoped() needs the user")
    if scope is TenantScope.SHARED:
        return model.objects.shared_or_mine(user, organization)
    return model.objects.visible_to(user, organization)


def is_visible(instance, *, user, organization) -> bool:
    """Whether `scoped(type(instance), user=user, organization=organization)` holds `instance`,
    read from the instance's own foreign keys when they are direct (no query), else asked
    of the database."""
    model = type(instance)
    scope = tenant_scope_of(model)
    queryset = model.objects.all()
    if scope is TenantScope.SHARED:
        if user is None:
            return False
        return scoped(model, user=user, organization=organization).filter(pk=instance.pk).exists()
    fields = [(queryset.organization_field, organization)]
    if scope is TenantScope.OWNER:
        if user is None:
            return False
        fields.append((queryset.owner_field, user))
    try:
        attnames = [model._meta.get_field(name).attname for name, _ in fields]
    except FieldDoesNotExist:  # a path such as "conversation__organization"
        return scoped(model, user=user, organization=organization).filter(pk=instance.pk).exists()
    return all(
        getattr(instance, attname) == getattr(expected, "pk", expected)
        for attname, (_, expected) in zip(attnames, fields, strict=True)
    )
