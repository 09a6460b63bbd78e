"""A TCP proxy the chaos suite puts between the service and a server, to fail the network
in the two ways that matter:

- cut(): every connection through it is reset and new ones are refused (a server gone,
  a firewall rejecting): clients notice at once.
- blackhole(): connections stay open but nothing is forwarded any more, either way, and new
  connections are accepted and then left hanging (a partition, a dead NAT entry, a frozen
  peer): clients notice only through their own timeouts and heartbeats.

heal() ends either: a cut's clients reconnect; a blackhole's connections resume where they
stopped (what was sent meanwhile is delivered late, as TCP retransmission would).
"""

from __future__ import annotations

import asyncio

from tests.tcp_proxy import TcpProxy


class FaultProxy(TcpProxy):
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__(target_host, target_port)
        self.mode = "up"  # "up", "cut" or "blackhole"
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        await self.stop()

    def cut(self) -> None:
        self.mode = "cut"
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        self._flowing.clear()

    def heal(self) -> None:
        self.mode = "up"
        self._flowing.set()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        self._writers.add(writer)
        await self._flowing.wait()  # a blackhole accepts, then says nothing
        if self.mode == "cut" or writer.transport.is_closing():
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        self._spawn(self._pipe(reader, up_writer))
        self._spawn(self._pipe(up_reader, writer))

    async def _forwarding(self) -> None:
        await self._flowing.wait()
