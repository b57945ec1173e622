"""Embedding providers behind one small interface (search.providers.base.EmbeddingProvider):

    provider = get_embedding_provider()        # the active model's provider
    provider.name, provider.model, provider.dimensions
    vectors = provider.embed(["text", ...])    # list of lists of floats, in input order
    vector = provider.embed_one("text")

Which provider: only settings choose it — EMBEDDING_PROVIDER (`local` by default, `openai`,
`gemini`), EMBEDDING_MODEL and EMBEDDING_DIMENSIONS (both default to the provider's
model; local serves all-MiniLM-L6-v2-int8 by default and the fp32 all-MiniLM-L6-v2 that
deployments embedded with before it, see search.providers.local). An API key configured
for chat (OPENAI_API_KEY, GEMINI_API_KEY) never switches embeddings.
`manage.py reindex_embeddings --model NEW` is the only way to move search to another model
once vectors exist: it records the switch in search.ActiveEmbeddingModel,
which then wins over the settings-derived default (`active_spec()`), so queries are always
embedded with the model their stored vectors came from.

Every provider failure is an DomainError naming the provider: UpstreamUnavailable /
NotConfigured (503) or UpstreamBadResponse (502).
"""

import logging
import re
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from raptorflow.errors import NotConfigured
from search.models import HNSW_MAX_DIMENSIONS
from search.providers.base import EmbeddingProvider

logger = logging.getLogger(__name__)

__all__ = [
    "EmbeddingProvider",
    "EmbeddingSpec",
    "PROVIDERS",
    "active_spec",
    "configured_spec",
    "forget_active_spec",
    "get_embedding_provider",
    "spec_for_model",
]

PROVIDERS = ("local", "openai", "gemini")


@dataclass(frozen=True)
class EmbeddingSpec:
    """Which provider, model and vector size: enough to build a provider."""

    provider: str
    model: str
    dimensions: int


def _default_model(provider: str) -> str:
    from search.providers import gemini, local, openai

    return {"local": local.MODEL_NAME, "openai": openai.DEFAULT_MODEL, "gemini": gemini.DEFAULT_MODEL}[provider]


def _default_dimensions(provider: str, model: str) -> int | None:
    from search.providers import gemini, local, openai

    if provider == "local":
        return local.DIMENSIONS
    if provider == "openai":
        return openai.NATIVE_DIMENSIONS.get(model)
    return gemini.DEFAULT_DIMENSIONS


def _local_models() -> tuple[str, ...]:
    """The int8 default first, then the fp32 model that deployments embedded before it."""
    from search.providers import local

    return tuple(local.MODELS)


def _spec(provider: str, model: str | None, dimensions: int | None) -> EmbeddingSpec:
    if provider not in PROVIDERS:
        raise NotConfigured(f"EMBEDDING_PROVIDER must be one of {', '.join(PROVIDERS)}, not {provider!r}.")
    model = model or _default_model(provider)
    if provider == "local" and model not in _local_models():
        raise NotConfigured(
            f"Embedding provider local serves only {' and '.join(_local_models())}, not {model!r} "
            "(set EMBEDDING_PROVIDER to openai or gemini for other models)."
        )
    dimensions = dimensions or _default_dimensions(provider, model)
    if not dimensions:
        raise NotConfigured(f"Embedding model {provider}:{model} needs EMBEDDING_DIMENSIONS.")
    if not 1 <= dimensions <= HNSW_MAX_DIMENSIONS:
        raise NotConfigured(
            f"Embedding model {provider}:{model} has {dimensions} dimensions; an HNSW index takes at most "
            f"{HNSW_MAX_DIMENSIONS} (set EMBEDDING_DIMENSIONS)."
        )
    return EmbeddingSpec(provider=provider, model=model, dimensions=dimensions)


def configured_spec() -> EmbeddingSpec:
    """The model the settings ask for (EMBEDDING_PROVIDER / EMBEDDING_MODEL / EMBEDDING_DIMENSIONS)."""
    provider = (settings.EMBEDDING_PROVIDER or "local").lower()
    return _spec(provider, settings.EMBEDDING_MODEL or None, settings.EMBEDDING_DIMENSIONS or None)


# How long a process trusts the active model it read: every search and RAG turn asks for it,
# a reindex changes it once. This process's own writes are seen at once (signals below);
# another process's switch (manage.py reindex_embeddings) within this many seconds.
ACTIVE_SPEC_TTL_SECONDS = 5.0

# (expires at, spec) or None; replaced whole, so threads never see half of it.
_active: tuple[float, EmbeddingSpec] | None = None


def active_spec() -> EmbeddingSpec:
    """The model search serves: the one reindex_embeddings switched to, else the configured one.
    Kept per process for ACTIVE_SPEC_TTL_SECONDS; read inside a transaction, it is not kept
    (the transaction may have switched the model itself and still roll back)."""
    global _active
    from django.db import connection

    from search.models import ActiveEmbeddingModel

    cached = _active
    if cached is not None and time.monotonic() < cached[0]:
        return cached[1]
    row = ActiveEmbeddingModel.objects.filter(pk=1).first()
    if row is None:
        spec = configured_spec()
    else:
        spec = EmbeddingSpec(provider=row.provider, model=row.model, dimensions=row.dimensions)
    if not connection.in_atomic_block:
        _active = (time.monotonic() + ACTIVE_SPEC_TTL_SECONDS, spec)
    return spec


def forget_active_spec(**_) -> None:
    """Drops the kept active model: the next active_spec() reads it again."""
    global _active
    _active = None


def _active_model_written(**_) -> None:
    from django.db import transaction

    forget_active_spec()
    # A reader between the write and its commit may have kept the old row.
    transaction.on_commit(forget_active_spec)


def _setting_changed(*, setting, **_) -> None:
    if setting.startswith("EMBEDDING_"):
        forget_active_spec()


def _connect_invalidation() -> None:
    from django.core.signals import setting_changed
    from django.db.models.signals import post_delete, post_save

    from search.models import ActiveEmbeddingModel

    # Cache upkeep only, not behaviour: whoever writes the row (reindex_embeddings through
    # search.services, the admin, a test) makes this process read it again.
    post_save.connect(_active_model_written, sender=ActiveEmbeddingModel, dispatch_uid="active_spec_saved")
    post_delete.connect(_active_model_written, sender=ActiveEmbeddingModel, dispatch_uid="active_spec_deleted")
    setting_changed.connect(_setting_changed, dispatch_uid="active_spec_settings")


_connect_invalidation()


_INFERRED_PROVIDERS = [
    (re.compile(r"^all-MiniLM-L6-v2(-int8)?$"), "local"),
    (re.compile(r"^text-embedding-"), "openai"),
    (re.compile(r"^(gemini-embedding-|models/)"), "gemini"),
]


def spec_for_model(model: str, *, provider: str | None = None, dimensions: int | None = None) -> EmbeddingSpec:
    """The spec of a model named on the command line (backfill/reindex --model): the active
    or configured spec when the name matches one of them, else inferred from the name."""
    if provider is None and dimensions is None:
        for spec in (active_spec(), configured_spec()):
            if spec.model == model:
                return spec
    if provider is None:
        provider = next((name for pattern, name in _INFERRED_PROVIDERS if pattern.match(model)), None)
        if provider is None:
            raise NotConfigured(f"Cannot tell which provider serves embedding model {model!r}; pass --provider.")
    return _spec(provider, model, dimensions)


_cache: dict[tuple, EmbeddingProvider] = {}
_cache_lock = threading.Lock()


def _build(spec: EmbeddingSpec) -> EmbeddingProvider:
    timeout = float(settings.PROVIDER_TIMEOUT_SECONDS)
    retries = int(settings.PROVIDER_MAX_RETRIES)
    if spec.provider == "local":
        from search.providers.local import LocalEmbeddingProvider

        return LocalEmbeddingProvider(model=spec.model, dimensions=spec.dimensions)
    if spec.provider == "openai":
        from search.providers.openai import OpenAIEmbeddingProvider

        return OpenAIEmbeddingProvider(
            model=spec.model,
            dimensions=spec.dimensions,
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            timeout=timeout,
            max_retries=retries,
        )
    from search.providers.gemini import GeminiEmbeddingProvider

    return GeminiEmbeddingProvider(
        model=spec.model,
        dimensions=spec.dimensions,
        api_key=settings.GEMINI_API_KEY,
        timeout=timeout,
        max_retries=retries,
    )


def get_embedding_provider(spec: EmbeddingSpec | None = None) -> EmbeddingProvider:
    """The provider of `spec` (default: the active model), built once per process and
    configuration and shared by every thread (the SDK clients are thread-safe)."""
    spec = spec or active_spec()
    if spec.provider not in PROVIDERS:
        raise NotConfigured(f"Unknown embedding provider {spec.provider!r}.")
    key = (
        spec,
        settings.OPENAI_API_KEY if spec.provider == "openai" else None,
        settings.OPENAI_BASE_URL if spec.provider == "openai" else None,
        settings.GEMINI_API_KEY if spec.provider == "gemini" else None,
        settings.PROVIDER_TIMEOUT_SECONDS,
        settings.PROVIDER_MAX_RETRIES,
    )
    provider = _cache.get(key)
    if provider is None:
        with _cache_lock:
            provider = _cache.get(key)
            if provider is None:
                provider = _cache[key] = _build(spec)
    return provider


def warm_up_active_provider() -> None:
    """Loads the active model before a web process takes requests (gunicorn's
    post_worker_init), so no search waits for it: with the local provider each process loads
    its ONNX session once, and the requests that arrived meanwhile queued behind that load
    (the p95 of a freshly started server's searches). Never fatal: a provider that cannot
    load now says why on the first request that needs it, as without warm-up."""
    from django.db import connections

    started = time.monotonic()
    try:
        provider = get_embedding_provider()
        warm_up = getattr(provider, "warm_up", None)
        if warm_up is None:
            return
        warm_up()
        logger.info("Embedding model %s ready in %.2f s", provider.label, time.monotonic() - started)
    except Exception as exc:
        logger.warning("Embedding model not warmed up: %s", exc)
    finally:
        # The active model's row was read on this (the worker's main) thread, which serves
        # no requests: its connection is not left open.
        connections.close_all()
