"""Shared fixtures: real weightinit servers on loopback (in-process or as a subprocess), TCP helpers."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "service: tests that start a real gRPC server on loopback")


@pytest.fixture(scope="session")
def server():
    """One in-process server on 127.0.0.1:<free port> for the whole session (default limits)."""
    from weightinit.server import create_server

    running = create_server("127.0.0.1", 0, backend="auto")
    yield running
    running.stop(grace=1)


@pytest.fixture(scope="session")
def client(server):
    from weightinit.client import Client

    with Client(server.target, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def local():
    from weightinit.client import LocalClient

    return LocalClient()


@pytest.fixture
def make_server():
    """Factory for extra in-process servers with custom Settings; all stopped at teardown."""
    from weightinit.server import Settings, create_server

    started = []

    def make(**settings):
        running = create_server("127.0.0.1", 0, backend="auto", settings=Settings(**settings))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop(grace=0.5)


class ServerProcess:
    """``python -m weightinit serve --port 0`` in a subprocess; ``target`` read from its first stdout line."""

    def __init__(self, *extra: str, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "weightinit", "serve", "--host", "127.0.0.1", "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
            cwd=str(REPO))
        self.target = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("listening on "):
                    self.target = line.split()[-1]
                    break
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        if self.target is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"server did not start: {err}")
        # keep reading stderr (one access-log line per call) so the server never blocks on a full pipe
        self._stderr: list[str] = []
        self._drain = threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True)
        self._drain.start()

    def signal(self, signum=signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        """What the server wrote to stderr; complete once it has exited."""
        if self.proc.poll() is not None:
            self._drain.join(10)
        return "".join(self._stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def server_process():
    """Factory for subprocess servers; killed at teardown if still running."""
    started = []

    def start(*extra: str, env: dict | None = None) -> ServerProcess:
        process = ServerProcess(*extra, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


class DroppingProxy:
    """A loopback TCP proxy. The first ``drops`` connections are cut (both directions closed)
    after ``after_bytes`` bytes went from server to client; later connections pass untouched."""

    def __init__(self, target: str, after_bytes: int, drops: int = 1):
        host, port = target.rsplit(":", 1)
        self.upstream = (host.strip("[]"), int(port))
        self.after_bytes = after_bytes
        self.drops_left = drops
        self.connections = 0
        self.cut = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                downstream, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self.connections += 1
                drop = self.drops_left > 0
                if drop:
                    self.drops_left -= 1
            threading.Thread(target=self._pipe_pair, args=(downstream, drop), daemon=True).start()

    def _pipe_pair(self, downstream: socket.socket, drop: bool):
        upstream = socket.create_connection(self.upstream)
        limit = self.after_bytes if drop else None
        sent = 0
        sockets = [downstream, upstream]
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(sockets, [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream:
                        if limit is not None and sent + len(data) >= limit:
                            downstream.sendall(data[:max(0, limit - sent)])
                            with self._lock:
                                self.cut += 1
                            return
                        sent += len(data)
                        downstream.sendall(data)
                    else:
                        upstream.sendall(data)
        except OSError:
            return
        finally:
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self._stop.set()
        self._listener.close()
        self._thread.join(2)


@pytest.fixture
def dropping_proxy():
    made = []

    def make(target: str, after_bytes: int, drops: int = 1) -> DroppingProxy:
        proxy = DroppingProxy(target, after_bytes, drops)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
