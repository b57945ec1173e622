"""The static files storage: WhiteNoise's hashed and compressed one, usable before
`collectstatic` has run.

Django's manifest storage refuses to name a file its manifest does not list (with DEBUG
off, `{% static %}` raises), so a checkout that never collected — the test suite, a plain
`manage.py runserver` — could not render /docs or the admin. Without a manifest at all this
storage names the original files instead, which WhiteNoise then serves from the apps' static
directories (settings.WHITENOISE_USE_FINDERS). A manifest that exists but lacks a file
(STATIC_ROOT collected before an upgrade) still fails loudly, as Django intends: run
`collectstatic` again.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage as _WhiteNoiseStorage


class CompressedManifestStaticFilesStorage(_WhiteNoiseStorage):
    def stored_name(self, name):
        if not self.hashed_files:  # STATIC_ROOT/staticfiles.json missing: never collected
            return name
        return super().stored_name(name)
