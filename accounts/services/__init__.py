"""Writes of the accounts app, one module per concern:

    users.py             first sign-in, landing organization, switching, verified emails
    organizations.py     create, update, delete (through the organization_deleting hook)
    roles.py             who may manage an organization and touch the owner role
    members.py           role changes and removals under the last-owner rule (also an operator's)
    invitations.py       single-use emailed invitations
    workspace.py         Google Workspace domain claims and joining through them
    account_deletion.py  deleting one's own account

Callers use `from accounts import services` and `services.<name>`: the public functions are
re-exported here.
"""

from accounts.services.account_deletion import account_delete, account_deletion_blockers
from accounts.services.invitations import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    invitation_token_hash,
)
from accounts.services.members import (
    membership_change_role,
    membership_remove,
    unscoped_membership_add,
    unscoped_membership_change_role,
    unscoped_membership_remove,
)
from accounts.services.organizations import (
    organization_create,
    organization_create_for,
    organization_delete,
    organization_update,
    unscoped_organization_delete,
)
from accounts.services.users import (
    landing_organization,
    organization_switch,
    user_create_with_personal_organization,
    user_email_verified,
    user_get_or_create,
)
from accounts.services.workspace import (
    CONSUMER_EMAIL_DOMAINS,
    domain_claim_approve,
    domain_claim_create,
    domain_claim_delete,
    workspace_domain_join,
)

__all__ = [
    "CONSUMER_EMAIL_DOMAINS",
    "account_delete",
    "account_deletion_blockers",
    "domain_claim_approve",
    "domain_claim_create",
    "domain_claim_delete",
    "invitation_accept",
    "invitation_create",
    "invitation_revoke",
    "invitation_token_hash",
    "landing_organization",
    "membership_change_role",
    "membership_remove",
    "organization_create",
    "organization_create_for",
    "organization_delete",
    "organization_switch",
    "organization_update",
    "unscoped_membership_add",
    "unscoped_membership_change_role",
    "unscoped_membership_remove",
    "unscoped_organization_delete",
    "user_create_with_personal_organization",
    "user_email_verified",
    "user_get_or_create",
    "workspace_domain_join",
]
