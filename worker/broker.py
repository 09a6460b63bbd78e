"""Connections to RabbitMQ given one address or several (the nodes of a cluster).

`SEGMENTS_AMQP_URL` may list several URLs separated by commas. A consumer's robust connection
tries the next address at every reconnection attempt, so losing the node it was connected to
moves it to another; the quorum queues are replicated across the cluster, so any node serves
them. aio-pika's robust connection takes one URL; the subclass below adds the rotation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import structlog
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

log = structlog.get_logger(__name__)

# What a failed attempt to reach one node raises.
CONNECT_ERRORS = (AMQPConnectionError, ConnectionError, OSError, TimeoutError)


def broker_urls(setting: str) -> tuple[str, ...]:
    """The addresses of a `SEGMENTS_AMQP_URL` value: one URL, or several separated by commas."""
    urls = tuple(u.strip() for u in setting.split(",") if u.strip())
    if not urls:
        raise ValueError(
            "SEGMENTS_AMQP_URL is empty: give one amqp:// URL, or several separated by commas"
        )
    return urls


def safe_url(url: str | URL) -> str:
    """The URL without its password, for logs."""
    parsed = URL(str(url))
    return str(parsed.with_password("***") if parsed.password else parsed)


class RoundRobinConnection(RobustConnection):
    """A robust connection that moves to the next address at every connection attempt: the
    first attempt goes to the first address, and after a loss the next node is tried first."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        addresses = [URL(u) for u in urls]
        self._addresses = itertools.cycle(addresses)
        # Starts at the last address: the first attempt moves on to the first.
        super().__init__(addresses[-1], **kwargs)

    # RobustConnection clears `transport` at the start of every connection attempt (and at
    # close): the one moment every attempt passes through, so the address moves on there.
    @property
    def transport(self) -> Any:
        return self.__dict__.get("_round_robin_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        constructing = "_round_robin_transport" not in self.__dict__
        if value is None and not constructing:
            self.url = next(self._addresses)
            log.debug("broker.address", url=safe_url(self.url))
        self.__dict__["_round_robin_transport"] = value


def with_options(url: str, options: dict[str, Any]) -> str:
    """`url` with the connection `options` (aio-pika reads them from the query string) it does
    not set itself."""
    parsed = URL(url)
    missing = {k: str(v) for k, v in options.items() if k not in parsed.query}
    return str(parsed.update_query(missing)) if missing else url


async def connect_robust(
    setting: str, timeout: float | None = None, **options: Any
) -> AbstractRobustConnection:
    """A robust connection to the first address that answers, then to whichever answers after
    a loss; `options` (heartbeat, reconnect_interval, ...) apply to every address. Raises the
    last error if no address answers at start (the caller retries)."""
    urls = tuple(with_options(u, options) for u in broker_urls(setting))
    error: BaseException | None = None
    for start in range(len(urls)):
        connection = RoundRobinConnection(urls[start:] + urls[:start])
        try:
            await connection.connect(timeout=timeout)
        except CONNECT_ERRORS as exc:
            error = exc
            log.warning("broker.unreachable", url=safe_url(urls[start]), error=str(exc))
            await connection.close()
            continue
        return connection
    assert error is not None
    raise error
