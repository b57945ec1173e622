from django.apps import AppConfig


class RagConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "rag"

    def ready(self):
        from rag.titles import schedule_title
        from raptorflow import hooks

        # An untitled conversation is titled after its first reply (raptorflow/hooks.py).
        hooks.untitled_conversation_answered.register(schedule_title)
