"""What to do when the service cannot start: a hint for each failure a user can fix (the
database or the broker unreachable, a RabbitMQ vhost or login refused, a port in use), logged
beside the error instead of a traceback."""

from __future__ import annotations

import errno
import socket

import asyncpg
from aiormq.exceptions import AMQPError, InvalidFrameError, ProbableAuthenticationError

DATABASE = "is PostgreSQL running and SEGMENTS_DATABASE_URL right?"
DATABASE_LOGIN = (
    "PostgreSQL refused the user or password of SEGMENTS_DATABASE_URL: fix them there (or "
    "create the role: CREATE ROLE name LOGIN PASSWORD '...')"
)
DATABASE_MISSING = (
    "the database of SEGMENTS_DATABASE_URL does not exist: `segments migrate` creates it"
)
NOT_MIGRATED = "the database has no segments tables yet: run `segments migrate` first"
BROKER_DOWN = (
    "is RabbitMQ running, and SEGMENTS_AMQP_URL right (host and port)? "
    "`rabbitmqctl status` tells whether it is up"
)
BROKER_LOGIN = (
    "RabbitMQ refused the user or password of SEGMENTS_AMQP_URL: fix them there "
    "(`rabbitmqctl list_users` shows the users)"
)
BROKER_VHOST = (
    "RabbitMQ refused to open the vhost of SEGMENTS_AMQP_URL (the path after the port): "
    "create it (`rabbitmqctl add_vhost NAME`, then `rabbitmqctl set_permissions -p NAME USER "
    "'.*' '.*' '.*'`) or fix the URL (`rabbitmqctl list_vhosts` shows them)"
)
METRICS_PORT = (
    "a port this process listens on is in use: the worker's /metrics "
    "(SEGMENTS_WORKER_METRICS_PORT, 9100 by default); stop the other program or choose "
    "another port (0: any free one)"
)


# What a command may fail with because of the setup, not a bug (segments/cli.py catches them):
# the network (OSError), and the broker's and PostgreSQL's refusals, which are not OSErrors.
SETUP_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    AMQPError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.UndefinedTableError,
)


def startup_hint(exc: BaseException) -> str | None:
    """What to do about `exc`, if it is one of the failures above; None for anything else
    (a bug: its message and type are all there is to say)."""
    if isinstance(exc, ProbableAuthenticationError):
        return BROKER_LOGIN
    if isinstance(exc, InvalidFrameError) and "Connection.Close" in str(exc):
        # The broker closed the connection while opening it: aiormq keeps no reply text, and
        # an unknown vhost (or one the user may not use) is the cause in practice.
        return BROKER_VHOST
    if isinstance(exc, AMQPError):
        return BROKER_DOWN
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        # The API's own port is checked before it starts, with its own message
        # (api_shim.server.CannotListen); what is left is the worker's metrics server.
        return None if "SEGMENTS_API_PORT" in str(exc) else METRICS_PORT
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return DATABASE  # the broker's are AMQPErrors, handled above
    return _database_hint(exc)


def _database_hint(exc: BaseException) -> str | None:
    if isinstance(
        exc, (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError)
    ):
        return DATABASE_LOGIN
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DATABASE_MISSING
    if isinstance(exc, asyncpg.UndefinedTableError):
        return NOT_MIGRATED
    return None


def describe(exc: BaseException) -> dict[str, str]:
    """`error=` and, when there is one, `hint=` for a log line."""
    fields = {"error": f"{type(exc).__name__}: {exc}"}
    hint = startup_hint(exc)
    if hint is not None:
        fields["hint"] = hint
    return fields
