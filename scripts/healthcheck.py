#!/usr/bin/env python3
"""Container health check: exits 0 when GET /health on this instance answers 200, 1
otherwise (503: database down or not migrated; no answer: server down or stuck).

Used by the Dockerfile's HEALTHCHECK and docker-compose.yml. It calls 127.0.0.1:$PORT with
no particular Host: /health accepts any (raptorflow.middleware.CommonMiddleware), so it
works whatever ALLOWED_HOSTS says. Standard library only, so a probe costs no Django start.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PORT", "8080")
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed http URL)
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
