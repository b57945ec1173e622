"""Secrets of the embedded default: random, generated on first start, kept under `.data/`.

Outside production mode nobody has to configure a secret, and none is written in the source
(a value in the repository would let anyone who read it mint tokens for a deployment that
forgot one variable). The first process that starts generates DJANGO_SECRET_KEY,
JWT_SECRET_KEY and ENCRYPTION_KEY with `secrets.token_urlsafe`, and every later process —
and every restart — reuses them, so tokens and stored provider keys survive a restart.

Several processes start at once (gunicorn workers, a test run's servers): the file is
written to a private temporary name and then hard-linked to its final name, which fails if
another process got there first; the loser reads the winner's file. The file is 0600.
Production mode never reads it: there the environment must provide each secret.
"""

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

NAMES = ("DJANGO_SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY")


def local_secrets(path: Path) -> dict[str, str]:
    """The secrets kept at `path`, created on first use."""
    existing = _read(path)
    if existing is not None and all(existing.get(name) for name in NAMES):
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = {name: secrets.token_urlsafe(50) for name in NAMES}
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets-")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(generated, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None:
            # An incomplete file (an older version's): replaced whole, atomically.
            os.replace(temporary, path)
            return generated
        # Another process may have won the race: then its secrets are read below.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return _read(path) or generated


def _read(path: Path) -> dict[str, str] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
