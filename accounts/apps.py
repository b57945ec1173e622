from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts.tokens import token_is_live
        from raptorflow import hooks

        # The per-account rate limit counts only tokens that still work (raptorflow/hooks.py).
        hooks.token_is_live.register(token_is_live)
