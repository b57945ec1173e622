from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self):
        from billing.catalogue import seed_after_migrate
        from billing.services import cancel_for_organization_deletion, limit_free_organizations
        from raptorflow import hooks

        # An organization is deleted only once its live subscription is cancelled: a
        # failure to cancel raises and blocks the deletion (raptorflow/hooks.py).
        hooks.organization_deleting.register(cancel_for_organization_deletion)
        # Each free organization brings its own free quota: a person owns only so many.
        hooks.organization_creating.register(limit_free_organizations)

        # Test runs flush the database between transactional tests; the plan catalogue
        # (reference data, like content types) comes back with post_migrate.
        post_migrate.connect(seed_after_migrate, sender=self, dispatch_uid="billing.seed_plans")
