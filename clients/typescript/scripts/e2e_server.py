"""Runs a command against a live RaptorFlow server, for the TypeScript client's end-to-end
check (scripts/e2e.sh):

    .venv/bin/python clients/typescript/scripts/e2e_server.py -- node build/examples/e2e.js

A fresh database on the embedded PostgreSQL, migrated; gunicorn on a loopback port; chat
replies from the stub OpenAI-compatible server of bench/api.py, also on loopback; local
embeddings; access tokens that live one minute (JWT_ACCESS_MINUTES=1), so the command sees
one expire. The command gets RAPTORFLOW_URL, RAPTORFLOW_ACCESS and RAPTORFLOW_REFRESH (from
`manage.py issue_token`), and its exit status is this script's. The server's log is printed
when the command fails.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from bench.api import StubOpenAI  # noqa: E402
from bench.common import free_port, gunicorn, manage  # noqa: E402

DATABASE = "raptorflow_tsclient_e2e"


def fresh_database_url() -> str:
    """An empty database of its own on the embedded server (or on DATABASE_URL's server)."""
    import psycopg

    from raptorflow.embedded_db import embedded_database_url

    base = os.environ.get("DATABASE_URL") or embedded_database_url(ROOT / ".data" / "pg")
    maintenance = base.replace("/raptorflow?", "/postgres?", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return base.replace("/raptorflow?", f"/{DATABASE}?", 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds the command may take")
    args = parser.parse_args()

    stub = ThreadingHTTPServer(("127.0.0.1", free_port()), StubOpenAI)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    env = {
        key: value
        for key, value in os.environ.items()
        # In-process background jobs and the database cache: nothing else to start.
        if key not in {"REDIS_URL", "CELERY_BROKER_URL", "DATABASE_REPLICA_URL"}
    }
    env.update(
        {
            "DATABASE_URL": fresh_database_url(),
            "HF_HUB_OFFLINE": "1",
            "EMBEDDING_PROVIDER": "local",
            "OPENAI_API_KEY": "sk-e2e-stub",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{stub.server_address[1]}/v1",
            "CHAT_PROVIDERS": "openai",
            "JWT_ACCESS_MINUTES": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    manage("migrate", "--noinput", env=env)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gunicorn.log"
        with gunicorn(env, workers=1, threads=4, log_path=log) as port:
            # Issued once the server answers, so the one-minute access token is fresh.
            issued = manage("issue_token", "e2e@example.com", env=env)
            tokens = dict(line.split(": ", 1) for line in issued.strip().splitlines())
            command_env = {
                **os.environ,
                "RAPTORFLOW_URL": f"http://127.0.0.1:{port}",
                "RAPTORFLOW_ACCESS": tokens["access"],
                "RAPTORFLOW_REFRESH": tokens["refresh"],
            }
            try:
                # The caller's own command line (scripts/e2e.sh), run as given.
                run = subprocess.run(args.command, env=command_env, timeout=args.timeout, check=False)  # noqa: S603
                status = run.returncode
            except subprocess.TimeoutExpired:
                print(f"e2e: {' '.join(args.command)} took more than {args.timeout:.0f} s", file=sys.stderr)
                status = 1
        if status != 0:
            print("--- server log ---", file=sys.stderr)
            print(log.read_text(errors="replace")[-20000:], file=sys.stderr)
    stub.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
