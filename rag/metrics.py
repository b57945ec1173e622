"""Prometheus metrics of the chat providers (served at /metrics with django-prometheus's)."""

from prometheus_client import Counter, Histogram

PROVIDER_LATENCY = Histogram(
    "raptorflow_chat_provider_seconds",
    "Time of a chat provider call (a whole stream for streamed replies).",
    ["provider", "outcome"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
PROVIDER_TOKENS = Counter(
    "raptorflow_chat_tokens_total",
    "Tokens reported by chat providers.",
    ["provider", "kind"],
)


def observe_provider_call(provider: str | None, outcome: str, seconds: float, prompt_tokens=0, completion_tokens=0):
    provider = provider or "unknown"
    PROVIDER_LATENCY.labels(provider=provider, outcome=outcome).observe(seconds)
    if prompt_tokens:
        PROVIDER_TOKENS.labels(provider=provider, kind="prompt").inc(prompt_tokens)
    if completion_tokens:
        PROVIDER_TOKENS.labels(provider=provider, kind="completion").inc(completion_tokens)
