"""Writes of the billing app (filled in by the billing module).

cancel_for_organization_deletion(organization): cancels the organization's Razorpay
subscription, if any, before the organization is deleted.
"""


def cancel_for_organization_deletion(organization) -> None:
    return None
