"""Deletes expired token bookkeeping (accounts.tokens.purge_expired_tokens): run it daily
(a Cloud Scheduler job or cron with the API's image and environment). Without it the
revoked-access, outstanding-refresh and sign-in tables only grow."""

from django.core.management.base import BaseCommand

from accounts.tokens import purge_expired_tokens


class Command(BaseCommand):
    help = "Delete expired revoked access tokens, outstanding refresh tokens and dead sign-ins."

    def handle(self, *args, **options):
        counts = purge_expired_tokens()
        self.stdout.write(", ".join(f"{name}: {count} deleted" for name, count in counts.items()))
