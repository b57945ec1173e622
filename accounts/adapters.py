"""django-allauth customisation, in one place.

RaptorFlow uses allauth's Google provider classes for the OAuth code exchange and ID-token
verification, but answers JSON and mints its own JWTs (accounts.google), so allauth's
session-based sign-up and auto-connect paths are switched off here."""

import requests
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings


class _TimeoutSession(requests.Session):
    """A requests session whose calls always carry a timeout: a slow Google must not hold
    a gunicorn thread forever."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", settings.PROVIDER_TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_auto_signup_allowed(self, request, sociallogin):
        return False

    def is_open_for_signup(self, request, sociallogin):
        return False

    def get_requests_session(self):
        return _TimeoutSession()
