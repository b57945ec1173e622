"""The plan catalogue every installation starts with: free, pro and team. Prices and
quotas are edited in the admin afterwards; the paid plans need their Razorpay plan id
there before anyone can subscribe. The free plan's empty quotas follow the FREE_PLAN_*
settings."""

PLANS = [
    {
        "code": "free",
        "name": "Free",
        "description": "For trying RaptorFlow out.",
        "price_paise": 0,
    },
    {
        "code": "pro",
        "name": "Pro",
        "description": "For a marketer using RaptorFlow every day.",
        "price_paise": 99_900,
        "message_quota": 10_000,
        "reply_token_quota": 2_000_000,
        "embedding_quota": 20_000,
    },
    {
        "code": "team",
        "name": "Team",
        "description": "For a marketing team sharing one organization.",
        "price_paise": 299_900,
        "message_quota": 50_000,
        "reply_token_quota": 10_000_000,
        "embedding_quota": 100_000,
    },
]



def ensure_default_plans(plan_model, using: str = "default") -> None:
    """Creates the catalogue's plans that are missing; never changes an existing one."""
    for plan in PLANS:
        plan_model.objects.using(using).get_or_create(code=plan["code"], defaults=plan)


def seed_after_migrate(sender, using="default", apps=None, **kwargs) -> None:
    """post_migrate handler: after `migrate`, and after a `flush` (which empties every
    table, then emits post_migrate), the catalogue is there again."""
    try:
        plan_model = apps.get_model("billing", "Plan") if apps is not None else sender.get_model("Plan")
    except LookupError:
        return  # billing's tables are not there (migrating backwards past them)
    ensure_default_plans(plan_model, using)
