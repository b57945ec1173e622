"""Plan quotas, checked and reserved atomically (filled in by the billing module).

The interface other apps call:
- reserve_messages(organization, count=1): inside the caller's transaction, before any row
  is written; raises raptorflow.errors.PaymentRequired (402 quota_exceeded) when over quota.
- require_reply_tokens(organization): before a chat provider is called.
- record_reply_tokens(organization, tokens): after the provider reported its usage.
- record_embeddings(organization, count): automatic embeddings are counted, never refused.
"""


def reserve_messages(organization, count: int = 1) -> None:
    return None


def require_reply_tokens(organization) -> None:
    return None


def record_reply_tokens(organization, tokens: int) -> None:
    return None


def record_embeddings(organization, count: int) -> None:
    return None
