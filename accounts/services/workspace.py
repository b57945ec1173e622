"""Google Workspace domains: an organization claims a domain, an operator approves it, and
verified Google sign-ins from that domain then join the organization.

Several organizations may hold pending claims on one domain, so a squatter's claim never
blocks the domain's real owner; an approved claim is the domain's only one (approving it
deletes the others) and refuses new claims by other organizations."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import DomainClaim, Membership, Role, User, WorkspaceExclusion
from accounts.services.roles import require_manager
from raptorflow import audit
from raptorflow.errors import Conflict, InvalidInput, NotFound

# Consumer mailboxes never match a claimed Workspace domain.
CONSUMER_EMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def workspace_domain_join(
    *, user: User, email: str, email_verified: bool, hosted_domain: str | None
) -> Membership | None:
    """Joins the organization that holds an approved claim on the user's Google Workspace
    domain. Needs a verified email whose domain equals Google's `hd` claim; consumer
    Gmail addresses never match."""
    if not email_verified or not hosted_domain:
        return None
    domain = hosted_domain.lower()
    if domain in CONSUMER_EMAIL_DOMAINS or email.lower().rsplit("@", 1)[-1] != domain:
        return None
    claim = DomainClaim.objects.filter(domain__iexact=domain, approved=True).select_related("organization").first()
    if claim is None:
        return None
    # A removal sticks: the domain does not add back someone removed or who left.
    if WorkspaceExclusion.objects.filter(organization=claim.organization, user=user).exists():
        return None
    membership, created = Membership.objects.get_or_create(
        organization=claim.organization, user=user, defaults={"role": Role.MEMBER}
    )
    if created:
        audit.record(
            "organization.workspace_join", actor=user, organization=claim.organization, target=membership, domain=domain
        )
    return membership


def domain_claim_create(*, actor: Membership, domain: str) -> DomainClaim:
    require_manager(actor)
    domain = domain.strip().lower().rstrip(".")
    if domain in CONSUMER_EMAIL_DOMAINS:
        raise InvalidInput({"domain": ["Consumer email domains cannot be claimed."]})
    approved = DomainClaim.objects.filter(domain__iexact=domain, approved=True).exclude(organization=actor.organization)
    if approved.exists():
        raise Conflict("This domain is already claimed by an organization.", code="domain_claimed")
    try:
        with transaction.atomic():
            claim = DomainClaim.objects.create(organization=actor.organization, domain=domain)
            audit.record(
                "domain_claim.create",
                actor=actor.user,
                organization=actor.organization,
                target=claim,
                domain=domain,
            )
    except IntegrityError:
        raise Conflict("This organization already claimed this domain.", code="domain_claimed") from None
    return claim


@transaction.atomic
def domain_claim_delete(*, actor: Membership, claim: DomainClaim) -> None:
    require_manager(actor)
    audit.record(
        "domain_claim.delete",
        actor=actor.user,
        organization=claim.organization,
        target=claim,
        domain=claim.domain,
        approved=claim.approved,
    )
    claim.delete()


@transaction.atomic
def domain_claim_approve(*, claim: DomainClaim, operator: User) -> DomainClaim:
    """An operator's approval (Django admin): from now on Google sign-ins from this
    Workspace domain join the organization. Every other claim on the domain (pending, or
    an earlier approval the operator overrides) is deleted, audited as rejected."""
    # Every claim of the domain locked in one order, so two approvals of competing claims
    # run one after the other: the second finds its claim deleted.
    claims = {
        row.pk: row
        for row in DomainClaim.objects.select_for_update()
        .select_related("organization")
        .filter(domain__iexact=claim.domain)
        .order_by("pk")
    }
    if claim.pk not in claims:
        raise NotFound(f"The claim on {claim.domain} no longer exists: another claim on it was approved.")
    claim = claims.pop(claim.pk)
    if claim.approved:
        return claim
    for other in claims.values():
        audit.record(
            "domain_claim.reject",
            actor=operator,
            organization=other.organization,
            target=other,
            domain=other.domain,
            was_approved=other.approved,
            approved_for=str(claim.organization_id),
        )
        other.delete()
    claim.approved, claim.approved_at, claim.approved_by = True, timezone.now(), operator
    claim.save(update_fields=["approved", "approved_at", "approved_by"])
    audit.record(
        "domain_claim.approve",
        actor=operator,
        organization=claim.organization,
        target=claim,
        domain=claim.domain,
    )
    return claim
