"""Razorpay, behind a small interface: the only module that imports the SDK.

Every call has a timeout; the SDK's and requests' errors become raptorflow.errors
exceptions naming Razorpay (503 when it is unconfigured, unreachable or failing, 502 when
it refuses our request or answers nonsense). Entities come back as plain dicts.
"""

import logging

import razorpay
import requests
from django.conf import settings
from razorpay.errors import BadRequestError, GatewayError, ServerError, SignatureVerificationError

from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable

logger = logging.getLogger(__name__)

# (connect, read) seconds: a checkout waits on this, so fail fast rather than hang a worker.
TIMEOUT = (5, 15)
# Razorpay needs a number of billing cycles; ten years of months is "until cancelled".
TOTAL_MONTHLY_CYCLES = 120


def is_configured() -> bool:
    return bool(settings.RAZORPAY_KEY_ID and settings.RAZORPAY_KEY_SECRET)


def key_id() -> str:
    return settings.RAZORPAY_KEY_ID


def create_subscription(*, plan_id: str, notes: dict[str, str]) -> dict:
    """A new subscription to `plan_id`, in status `created` until the customer completes
    Checkout."""
    data = {"plan_id": plan_id, "total_count": TOTAL_MONTHLY_CYCLES, "customer_notify": 1, "notes": notes}
    return _subscription_entity(_call(lambda client: client.subscription.create(data, timeout=TIMEOUT)))


def cancel_subscription(subscription_id: str, *, at_cycle_end: bool) -> dict:
    data = {"cancel_at_cycle_end": 1 if at_cycle_end else 0}
    return _subscription_entity(
        _call(lambda client: client.subscription.cancel(subscription_id, data, timeout=TIMEOUT))
    )


def webhook_signature_is_valid(body: bytes, signature: str, secret: str) -> bool:
    """HMAC-SHA256 of the raw body with the webhook secret, compared in constant time by
    the SDK. The SDK wants text; a body that is not UTF-8 cannot have been signed by it."""
    if not signature:
        return False
    try:
        razorpay.Utility(None).verify_webhook_signature(body.decode("utf-8"), signature, secret)
    except (SignatureVerificationError, UnicodeDecodeError):
        return False
    except TypeError:
        # hmac.compare_digest refuses non-ASCII text: a garbled header, not a signature.
        return False
    return True


def require_configured() -> None:
    if not is_configured():
        raise NotConfigured("Billing is not configured on this server: set RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET.")


def _client() -> razorpay.Client:
    require_configured()
    return razorpay.Client(auth=(settings.RAZORPAY_KEY_ID, settings.RAZORPAY_KEY_SECRET))


def _call(operation):
    client = _client()
    try:
        return operation(client)
    except ValueError:
        # The SDK parses every answer as JSON; an HTML error page lands here.
        logger.warning("Razorpay answered something that is not JSON")
        raise UpstreamBadResponse("Razorpay answered with something unusable.")
    except requests.Timeout:
        logger.warning("Razorpay timed out")
        raise UpstreamUnavailable("Razorpay did not answer in time; try again.")
    except requests.RequestException as exc:
        logger.warning("Razorpay unreachable: %s", exc)
        raise UpstreamUnavailable("Razorpay could not be reached; try again.")
    except BadRequestError as exc:
        logger.warning("Razorpay refused the request: %s", exc)
        raise UpstreamBadResponse(f"Razorpay refused the request: {exc}")
    except (GatewayError, ServerError) as exc:
        logger.warning("Razorpay failed: %s", exc)
        raise UpstreamUnavailable("Razorpay is failing; try again later.")


def _subscription_entity(answer) -> dict:
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("id"), str)
        or not isinstance(answer.get("status"), str)
    ):
        raise UpstreamBadResponse("Razorpay answered with something unusable.")
    return answer
