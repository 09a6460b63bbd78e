"""A three-node RabbitMQ cluster on this machine, beside (never touching) the local broker.

    .venv/bin/python -m bench.rabbitmq_cluster start   # prints SEGMENTS_AMQP_URL for it
    .venv/bin/python -m bench.rabbitmq_cluster status
    .venv/bin/python -m bench.rabbitmq_cluster stop

Nodes `segments-c1@localhost` .. `c3`, AMQP on 127.0.0.1:5781..5783, inter-node ports
25781..25783, data and logs under /tmp/segments-rabbitmq-cluster/ (`--base` to move it), no
plugins (so no port of the local broker's management UI is taken). The nodes run as the
`rabbitmq` user with its Erlang cookie, as the Debian package's own node does. The service's
quorum queues declared on it get a replica on every node (RabbitMQ's default group size is
the cluster's size), so losing any one node loses nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NODES = 3
FIRST_PORT = 5781
DEFAULT_BASE = Path("/tmp/segments-rabbitmq-cluster")


@dataclass(frozen=True)
class Node:
    index: int
    base: Path

    @property
    def name(self) -> str:
        return f"segments-c{self.index}@localhost"

    @property
    def port(self) -> int:
        return FIRST_PORT + self.index - 1

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def directory(self) -> Path:
        return self.base / f"c{self.index}"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(20000 + self.port),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq"),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_PID_FILE": str(self.directory / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def ctl(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.name} {' '.join(args)}: {done.stderr}")
        return done.stdout

    def running(self) -> bool:
        return self.ctl("ping", check=False).strip().endswith("succeeded")

    def start(self) -> None:
        """Start the node (its data kept from an earlier run) and wait until it serves."""
        if self.running():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        )
        shutil.chown(self.directory, "rabbitmq")
        subprocess.run(
            ["rabbitmq-server", "-detached"], env=self.environment(), cwd="/tmp", check=True
        )
        # `wait` on the pid file, not `await_startup`: right after -detached the node may not
        # be registered with epmd yet, and await_startup then fails at once.
        self.ctl("wait", str(self.directory / "pid"), "--timeout", "110")

    def stop(self) -> None:
        self.ctl("stop", check=False)

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, not a shutdown."""
        pid = (self.directory / "pid").read_text().strip()
        subprocess.run(["kill", "-9", pid], check=False)


def nodes(base: Path = DEFAULT_BASE) -> list[Node]:
    return [Node(i, base) for i in range(1, NODES + 1)]


def amqp_url(base: Path = DEFAULT_BASE) -> str:
    """SEGMENTS_AMQP_URL for the cluster: every node's address."""
    return ",".join(node.url for node in nodes(base))


def start(base: Path = DEFAULT_BASE) -> list[Node]:
    cluster = nodes(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "enabled_plugins").write_text("[].\n")
    shutil.chown(base, "rabbitmq")
    shutil.chown(base / "enabled_plugins", "rabbitmq")
    first = cluster[0]
    first.start()
    for node in cluster[1:]:
        node.start()
        if first.name not in node.ctl("cluster_status"):
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
    return cluster


def stop(base: Path = DEFAULT_BASE) -> None:
    for node in reversed(nodes(base)):
        node.stop()


def queue_leaders(node: Node, vhost: str = "/") -> dict[str, str]:
    """Each quorum queue of `vhost` and the node that leads it, as `node` sees it."""
    out = node.ctl("list_queues", "-p", vhost, "name", "type", "leader", "--no-table-headers")
    leaders = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "quorum":
            leaders[parts[0]] = parts[2]
    return leaders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    args = parser.parse_args()
    if args.action == "start":
        start(args.base)
        print(f"SEGMENTS_AMQP_URL={amqp_url(args.base)}")
    elif args.action == "stop":
        stop(args.base)
    else:
        sys.stdout.write(nodes(args.base)[0].ctl("cluster_status"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
