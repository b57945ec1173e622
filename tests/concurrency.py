"""Running calls at the same moment on real transactions, one database connection per
thread, for the concurrency tests of every app."""

import threading

from django.db import connection


def run_together(*calls, timeout: float = 120) -> list:
    """Runs each call in its own thread, all released together; answers each one's
    result or the exception it raised. Each thread closes its own connection."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            outcomes[index] = call()
        except Exception as exc:  # reported by the test, not swallowed
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent call is stuck"
    return outcomes
