"""A PostgreSQL server and a RabbitMQ node of the chaos suite's own (bench/chaos.py): started
in a scratch directory on free ports, so the suite may restart, stop and kill them without
touching any server anyone else uses.

PostgreSQL refuses to run as root, and RabbitMQ's scripts switch to their own user: when the
suite runs as root, each server runs as its packaged user (`postgres`, `rabbitmq`) through
`runuser`, in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
# Below Linux's ephemeral range (32768-60999): a port there may be taken at any moment by
# some client's outgoing connection, and a restarted broker could then not listen again.
_PORTS = (21000, 32000)


def free_port(taken: set[int] | None = None) -> int:
    """A port nothing listens on, with the next one free too (RabbitMQ's distribution)."""
    taken = taken or set()
    for _ in range(200):
        port = random.randrange(*_PORTS, 2)
        if port in taken or port + 1 in taken:
            continue
        if all(_bindable(p) for p in (port, port + 1)):
            taken.update((port, port + 1))
            return port
    raise RuntimeError("no free port pair found below the ephemeral range")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _as_user(user: str, argv: list[str]) -> list[str]:
    """argv run as `user` when we are root (servers that refuse root or expect their user)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", user, "--", *argv]


def _own(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        data = str(self.directory / "data")
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        argv = [str(PG_BIN / "pg_ctl"), "-D", data, "-o", options, "-w", *args]
        _run(_as_user("postgres", argv), timeout=timeout)

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _own(self.directory, "postgres")
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.directory / "data")]
        _run(_as_user("postgres", [*initdb, "-U", "postgres", "--auth=trust", "-N"]))
        self.start()

    def start(self) -> None:
        self._ctl("-l", str(self.directory / "server.log"), "start")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart", "-l", str(self.directory / "server.log"))

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            self._ctl("-m", "immediate", "stop", timeout=60)


@dataclass
class PrivateRabbit:
    directory: Path
    port: int
    node: str

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        base = self.directory
        return {
            # The cookie the CLI (rabbitmqctl, which also switches to this user) reads.
            "HOME": pwd.getpwnam("rabbitmq").pw_dir if os.geteuid() == 0 else str(Path.home()),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 1),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"),
        }

    def create(self) -> None:
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")  # no management port
        (self.directory / "rabbitmq.conf").write_text("")
        (self.directory / "env.conf").write_text(
            'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface'
            ' {127,0,0,1}"\n'
        )
        _own(self.directory, "rabbitmq")
        self.start()

    def start(self) -> None:
        env = ["env", *(f"{k}={v}" for k, v in self._env().items())]
        _run(_as_user("rabbitmq", [*env, str(RABBITMQ_SERVER), "-detached"]))
        self.ctl("wait", str(self.directory / "pid"), "--timeout", "90", timeout=120)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return _run(["rabbitmqctl", "-q", "-n", self.node, *args], timeout=timeout).stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app", timeout=120)

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            self.ctl("stop", timeout=60)

    def add_vhost(self, vhost: str) -> str:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return f"{self.url}{vhost}"

    def queue_depths(self, vhost: str) -> dict[str, int]:
        """Messages in each queue of `vhost` (ready and unacknowledged)."""
        out = self.ctl("list_queues", "-p", vhost, "name", "messages", "--no-table-headers")
        depths = {}
        for line in out.splitlines():
            name, _, count = line.rpartition("\t")
            if name:
                depths[name] = int(count)
        return depths


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
