from django.apps import AppConfig


class SearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"

    def ready(self):
        from raptorflow import hooks
        from search import checks  # noqa: F401  (registers the embedding settings checks)
        from search.tasks import schedule_message_embedding
        from search.tenant_indexes import drop_for_organization

        # Every stored message is embedded off the request path (raptorflow/hooks.py).
        hooks.message_stored.register(schedule_message_embedding)
        # A deleted organization's tenant vector indexes go with it.
        hooks.organization_deleting.register(drop_for_organization)
