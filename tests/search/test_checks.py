"""Misconfigured embedding settings are reported by `manage.py check`."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_default_embedding_settings_pass_the_checks():
    call_command("check", tags=["search"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"EMBEDDING_PROVIDER": "cohere"}, "EMBEDDING_PROVIDER must be one of local, openai, gemini"),
        ({"EMBEDDING_PROVIDER": "openai"}, "OPENAI_API_KEY is not set"),
        ({"EMBEDDING_PROVIDER": "gemini"}, "GEMINI_API_KEY is not set"),
        (
            {"EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": "sk", "EMBEDDING_MODEL": "custom-embedder"},
            "EMBEDDING_DIMENSIONS",
        ),
        ({"EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": "sk", "EMBEDDING_MODEL": "text-embedding-3-large"}, "2000"),
        ({"EMBEDDING_MODEL": "all-mpnet-base-v2"}, "only all-MiniLM-L6-v2"),
    ],
)
def test_misconfigured_embeddings_fail_the_checks(settings, overrides, message):
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(SystemCheckError, match=message):
        call_command("check", tags=["search"])
