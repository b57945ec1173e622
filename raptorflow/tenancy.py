"""Tenant scoping: the one place that decides which rows a caller may touch.

Every tenant-owned model uses a manager built from TenantQuerySet and declares its scope:
- OWNER: conversation data (conversations, messages, embeddings, context), private to the
  (organization, owner) pair; selected with `.visible_to(user, organization)`.
- ORGANIZATION: org-level rows (members, invitations, billing), selected with `.for_org(org)`.

Views never filter by tenant by hand: raptorflow.api.TenantAPIView calls `scoped()` below,
which picks the right one from the model. Code that must bypass scoping (admin, management
commands, background jobs) uses `Model.objects` explicitly and names its function
`unscoped_…`.
"""

from enum import Enum

from django.db import models


class TenantScope(Enum):
    OWNER = "owner"
    ORGANIZATION = "organization"


class TenantQuerySet(models.QuerySet):
    # Field names, overridable per model when the path is not direct.
    organization_field = "organization"
    owner_field = "owner"

    def for_org(self, organization):
        return self.filter(**{self.organization_field: organization})

    def visible_to(self, user, organization):
        return self.filter(**{self.organization_field: organization, self.owner_field: user})


def scoped(model, *, user, organization) -> models.QuerySet:
    """All rows of `model` the caller may see. A model without a tenant scope is refused
    so that a new model cannot be exposed unscoped by accident."""
    scope = getattr(model, "tenant_scope", None)
    if scope is TenantScope.OWNER:
        return model.objects.visible_to(user, organization)
    if scope is TenantScope.ORGANIZATION:
        return model.objects.for_org(organization)
    raise TypeError(f"{model.__name__} declares no tenant_scope and cannot be served by the API")
