"""Re-encrypts every stored provider key with the newest encryption key.

    manage.py rotate_encryption_keys

Key rotation: put the new key first in ENCRYPTION_KEYS (newest first, the old ones after
it), deploy, run this, then drop the old keys. Idempotent: a key already encrypted with the
newest is left alone, so running it again re-encrypts nothing. Each row is re-read under a
lock, so a key an organization replaces meanwhile is not overwritten with the old one. Rows
that no configured key opens are counted and make the command fail, before anyone drops a
key they still need.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from rag import crypto
from rag.models import ProviderKey
from raptorflow import audit


class Command(BaseCommand):
    help = "Re-encrypt the stored provider keys with the newest of ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        rotated = current = unreadable = 0
        for pk in ProviderKey.objects.order_by("pk").values_list("pk", flat=True).iterator():
            with transaction.atomic():
                stored = ProviderKey.objects.select_for_update().filter(pk=pk).first()
                if stored is None:
                    continue
                if crypto.uses_newest_key(stored.encrypted_key):
                    current += 1
                    continue
                try:
                    stored.encrypted_key = crypto.rotate(stored.encrypted_key)
                except crypto.DecryptionFailed:
                    unreadable += 1
                    self.stderr.write(f"Provider key {stored.pk} opens with none of the configured keys.")
                    continue
                # Only the ciphertext: the key and its display digits are unchanged.
                stored.save(update_fields=["encrypted_key"])
                rotated += 1
        if rotated:
            audit.record("encryption_keys.rotate", actor=None, rotated=rotated)
        self.stdout.write(
            f"Re-encrypted {rotated} provider key(s) with the newest key; {current} already used it; "
            f"{unreadable} unreadable."
        )
        if unreadable:
            raise CommandError(f"{unreadable} provider key(s) could not be decrypted with any configured key.")
