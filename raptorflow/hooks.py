"""Hook points: how a lower layer causes something in a higher one (STYLE §11).

The packages form layers — raptorflow ← accounts ← billing ← conversations ← search ←
documents ← rag — and a package imports only those below it. When a lower layer must cause
something in a higher one, it calls one of the hook points below, and the higher layer
registers its receiver in its AppConfig.ready(). Not Django signals: a hook point is a plain
call, in the caller's thread and transaction, whose receivers are listed here, whose
failures reach the caller (a subscription that cannot be cancelled blocks the deletion),
and which a test can check is filled in.

The hook points (each registered exactly once per receiver):

  organization_deleting(organization)
      called by accounts before an organization is deleted, outside any transaction;
      billing cancels its live subscription (raising UpstreamUnavailable/UpstreamBadResponse
      blocks the deletion).
  organization_creating(owner)
      called by accounts in the transaction that creates an organization for `owner` at
      their request (not their personal one, made at first sign-in); billing refuses a
      free organization beyond FREE_ORGANIZATIONS_PER_USER (raising PaymentRequired
      `free_organization_limit` stops the creation).
  message_stored(message_id)
      called by conversations once the transaction that stored a message has committed;
      search schedules its embedding (raptorflow.jobs, idempotent).
  untitled_conversation_answered(conversation_id)
      called by conversations once the transaction that stored an assistant message in a
      conversation without a title has committed; rag schedules the job that titles it
      (rag/titles.py, which writes only while the conversation is still untitled).
  scrape_time_metrics() -> iterable of prometheus metric families
      called by /metrics (raptorflow/metrics_view.py) at each scrape; conversations
      reports its feedback counts, read from the database (one figure for every process).
  member_leaving(organization, user)
      called by accounts in the transaction that removes a membership (the member left or
      was removed), before the row goes; documents deletes the member's private documents
      there (their shared ones stay with the organization).
  account_deleting(user)
      called by accounts in the transaction that deletes an account, before the user row
      goes (organizations nobody else belongs to are gone already, through
      organization_deleting); documents deletes the user's private documents.
  embeddings_backfill(spec, batch_size, organization_id) -> str
      called by search's backfill_embeddings and reindex_embeddings after the messages:
      documents embeds the chunks that lack a vector of `spec`'s model and answers a line
      for the command's output (raising stops the command, which can be run again).
  embeddings_dropping(keep_model) -> int
      called by reindex_embeddings once search has switched models: documents deletes its
      chunk vectors of every other model and their indexes, answering how many went.
  token_is_live(claims) -> bool
      called by the per-account rate limit (raptorflow.throttling) with the claims of a
      token whose signature and expiry checked out; accounts answers whether it still
      works (not revoked, blacklisted or older than a change of its membership).

conversations/export.py holds the account export's own hook point (sections that higher
layers add to GET /api/auth/me/export).
"""

from collections.abc import Callable


class HookPoint:
    """A named call site that higher layers fill in. Receivers run in registration order;
    an exception from one stops the call and reaches the caller."""

    def __init__(self, name: str):
        self.name = name
        self._receivers: list[Callable] = []

    def register(self, receiver: Callable) -> Callable:
        # ready() may run twice (tests re-populate apps): registering again changes nothing.
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        return receiver

    def unregister(self, receiver: Callable) -> None:
        if receiver in self._receivers:
            self._receivers.remove(receiver)

    @property
    def receivers(self) -> tuple[Callable, ...]:
        return tuple(self._receivers)

    def __call__(self, *args, **kwargs) -> list:
        return [receiver(*args, **kwargs) for receiver in self._receivers]

    def __repr__(self):
        return f"<HookPoint {self.name}: {[getattr(r, '__qualname__', r) for r in self._receivers]}>"


organization_deleting = HookPoint("organization_deleting")
organization_creating = HookPoint("organization_creating")
message_stored = HookPoint("message_stored")
untitled_conversation_answered = HookPoint("untitled_conversation_answered")
scrape_time_metrics = HookPoint("scrape_time_metrics")
token_is_live = HookPoint("token_is_live")
member_leaving = HookPoint("member_leaving")
account_deleting = HookPoint("account_deleting")
embeddings_backfill = HookPoint("embeddings_backfill")
embeddings_dropping = HookPoint("embeddings_dropping")
