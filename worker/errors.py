"""Errors, split by who handles them.

- BadMessage (worker.messages): the message itself is wrong -> dead-lettered at once.
- RulesInvalid (worker.rules): the segment's rules no longer fit its account -> FAILED at once.
- transient errors (database or broker away, timeouts, lock conflicts) -> retried with
  backoff; when attempts run out, a build ends FAILED with a reason a user can act on.
Anything else is a bug: retried like a transient error, so it is never lost, and logged.
"""

from __future__ import annotations

import asyncpg

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # connection refused/reset, includes ConnectionError
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.QueryCanceledError,  # statement_timeout
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,  # server starting or shutting down
    asyncpg.AdminShutdownError,
    # asyncpg's name for a connection the server ended (a restart, pg_terminate_backend) when
    # the end arrives while the connection is idle: its FATAL puts the protocol in an error
    # state, and the next query fails with "cannot switch to state N; another operation (2)
    # is in progress" instead of "connection was closed" (asyncpg issues 784 and 1069). The
    # pool drops such a connection when it is released, so a retry gets a fresh one.
    asyncpg.InternalClientError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def failure_reason(exc: BaseException, attempts: int) -> str:
    """What a user or operator reads on a FAILED segment: what happened and what to do."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return (
            f"the segment's query was stopped by the statement timeout {attempts} times; "
            "narrow the rules (fewer OR groups, shorter day windows) or ask an operator to "
            "raise SEGMENTS_STATEMENT_TIMEOUT_MS"
        )
    if is_transient(exc):
        return (
            f"the build failed {attempts} times on a temporary error ({type(exc).__name__}: "
            f"{exc}); check that PostgreSQL is reachable, then rebuild the segment"
        )
    return (
        f"the build failed {attempts} times on an unexpected error ({type(exc).__name__}); "
        "operators: see the worker log for this segment_id, then rebuild it"
    )
