"""A TCP forwarder on a fixed loopback port that can be switched off and on again: an
outage of the service behind it (connections cut, new ones refused) that keeps the
service's state, e.g. the objects of an in-memory S3 server."""

from __future__ import annotations

import socket
import threading

try:  # tests/ on sys.path (rootdir conftest) or tests as a package
    from s3server import free_port
except ImportError:  # pragma: no cover
    from tests.s3server import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port after every outage
        listener.listen(64)
        listener.settimeout(0.1)  # the accept loop notices stop() within 0.1 s
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        self._listener = None
        if self._acceptor is not None:
            self._acceptor.join()  # it sees the change within 0.1 s and closes the listener
            self._acceptor = None
        with self._lock:
            sockets, self._open = self._open, set()
        for s in sockets:
            _close(s)

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listener is listener:
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                self._forward(client, listener)

    def _forward(self, client: socket.socket, listener: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        client.settimeout(None)
        upstream.settimeout(None)
        with self._lock:
            if self._listener is not listener:  # stopped meanwhile
                _close(client), _close(upstream)
                return
            self._open.update((client, upstream))
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src), self._open.discard(dst)
            _close(src), _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
