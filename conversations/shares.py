"""Share links: a read-only snapshot of a conversation's active branch, reached with a
link token.

- `share_create` freezes the active branch as it is now (conversations.selectors.
  active_branch_messages): the title, and the role, content and time of each message —
  never metadata, generation data (context, usage) or anything added later. The token is
  32 random bytes (secrets.token_urlsafe), returned once; only its sha256 is stored, and
  access logs show /api/shares/[redacted] (raptorflow/logs.py).
- Scope `organization`: members of the conversation's organization; `public`: anyone, only
  while the organization's settings allow public links (`settings.public_share_links`,
  off by default; owners and admins set it with PATCH /api/organizations/current).
- A share ends — GET answers 404, as for a token that never existed — when it is revoked
  or expired, when its conversation is deleted (cascade), when its owner's account is
  deleted (cascade) or deactivated, or when the owner's membership ends (a membership
  made after the share, on re-joining, does not bring it back).
- Creating and revoking are audited; each successful read counts a view.
"""

import hashlib
import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import Membership
from conversations.models import Conversation, ConversationShare, ShareScope
from conversations.selectors import active_branch_messages
from raptorflow import audit
from raptorflow.errors import InvalidInput, NotFound, PermissionDenied

PUBLIC_LINKS_SETTING = "public_share_links"
TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything far from that is not one of ours.
TOKEN_MAX_CHARS = 128
ENDED = "This share link does not exist or has ended."
PUBLIC_LINKS_OFF = (
    "Public links are off for this organization; an owner or admin can allow them by setting "
    f"settings.{PUBLIC_LINKS_SETTING} to true (PATCH /api/organizations/current)."
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def public_links_allowed(organization) -> bool:
    settings = organization.settings if isinstance(organization.settings, dict) else {}
    return settings.get(PUBLIC_LINKS_SETTING) is True


def snapshot_messages(conversation: Conversation) -> list[dict]:
    """The active branch as the share shows it: roles, contents and timestamps only."""
    return [
        {"role": role, "content": content, "created_at": created_at.isoformat()}
        for role, content, created_at in active_branch_messages(conversation).values_list(
            "role", "content", "created_at"
        )
    ]


@transaction.atomic
def share_create(
    *, conversation: Conversation, organization, scope: str, expires_at: datetime | None = None
) -> tuple[ConversationShare, str]:
    """(share, link token). The token is shown this once: only its hash is kept."""
    if scope == ShareScope.PUBLIC and not public_links_allowed(organization):
        raise PermissionDenied(PUBLIC_LINKS_OFF, code="public_links_disabled")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput({"expires_at": ["Must be in the future."]})
    token = secrets.token_urlsafe(TOKEN_BYTES)
    share = ConversationShare.objects.create(
        organization_id=conversation.organization_id,
        owner_id=conversation.owner_id,
        conversation=conversation,
        scope=scope,
        token_hash=hash_token(token),
        title=conversation.title,
        messages=snapshot_messages(conversation),
        expires_at=expires_at,
    )
    audit.record(
        "conversation.share_created",
        organization=organization,
        target=share,
        conversation_id=str(conversation.pk),
        scope=scope,
        expires_at=expires_at.isoformat() if expires_at else None,
        message_count=len(share.messages),
    )
    return share, token


@transaction.atomic
def share_revoke(*, share: ConversationShare) -> ConversationShare:
    """Ends the link at once; revoking it again changes nothing."""
    now = timezone.now()
    revoked = ConversationShare.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        share.revoked_at = now
        audit.record(
            "conversation.share_revoked",
            organization=share.organization_id,
            target=share,
            conversation_id=str(share.conversation_id),
            scope=share.scope,
        )
    return share


def share_list(shares: QuerySet[ConversationShare], *, conversation: Conversation) -> QuerySet[ConversationShare]:
    """A conversation's shares (from the caller's scoped shares), newest first."""
    return shares.filter(conversation=conversation).order_by("-created_at", "-id")


SHARE_STATUSES = ["active", "revoked", "expired"]


def share_status(share: ConversationShare) -> str:
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at is not None and share.expires_at <= timezone.now():
        return "expired"
    return "active"


def unscoped_share_for_viewer(*, token: str, viewer) -> ConversationShare:
    """The share a link token opens for `viewer` (a signed-in user, or None), with its view
    counted; NotFound alike for a token that does not exist, has ended, or is not the
    viewer's to open. Unscoped: the reader of a share is not its owner."""
    if not token or len(token) > TOKEN_MAX_CHARS or not token.isascii():
        raise NotFound(ENDED)
    now = timezone.now()
    owner_is_member = Membership.objects.filter(
        organization_id=OuterRef("organization_id"),
        user_id=OuterRef("owner_id"),
        created_at__lte=OuterRef("created_at"),
    )
    viewer_is_member = Membership.objects.filter(
        organization_id=OuterRef("organization_id"), user_id=getattr(viewer, "pk", None)
    )
    share = (
        ConversationShare.objects.select_related("organization")
        .filter(token_hash=hash_token(token), revoked_at__isnull=True, owner__is_active=True)
        .annotate(owner_is_member=Exists(owner_is_member), viewer_is_member=Exists(viewer_is_member))
        .first()
    )
    if share is None or not share.owner_is_member or (share.expires_at is not None and share.expires_at <= now):
        raise NotFound(ENDED)
    if share.scope == ShareScope.PUBLIC:
        readable = public_links_allowed(share.organization)
    else:
        readable = viewer is not None and share.viewer_is_member
    if not readable:
        raise NotFound(ENDED)
    ConversationShare.objects.filter(pk=share.pk).update(view_count=F("view_count") + 1, last_viewed_at=now)
    share.view_count += 1
    share.last_viewed_at = now
    return share
