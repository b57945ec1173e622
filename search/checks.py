"""System checks of the embedding settings: a misconfigured provider stops `migrate`,
`runserver` and `check --deploy` with a message naming the variable, instead of answering
503 on the first search."""

from django.conf import settings
from django.core.checks import Error, register

from raptorflow.errors import DomainError

KEYS = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


@register("search")
def check_embedding_settings(app_configs=None, **kwargs):
    from search.providers import configured_spec

    try:
        spec = configured_spec()
    except DomainError as exc:
        return [Error(str(exc.detail), id="search.E001")]
    key = KEYS.get(spec.provider)
    if key and not getattr(settings, key):
        return [Error(f"EMBEDDING_PROVIDER is {spec.provider} but {key} is not set.", id="search.E002")]
    return []
