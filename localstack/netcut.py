"""A loopback TCP link that a drill can cut and restore: a network outage
between clients and a service, while the service keeps running.

Why not just stop the emulator? Google's Pub/Sub emulator keeps topics and
messages in memory only: killing it loses what it held, which real Pub/Sub
never does. A real Pub/Sub outage looks to its clients like this link cut:
new connections are refused, open ones are reset, and when the service is
reachable again every acknowledged publish is still there.

Clients are pointed at `link.address` instead of the service's own port.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading

from localstack.services import LOOPBACK, free_port

_log = logging.getLogger(__name__)
_CHUNK = 64 * 1024


class CuttableLink:
    def __init__(self, target_port: int, port: int | None = None):
        self.target = (LOOPBACK, target_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.connections = 0  # accepted over the link's life, for tests and logs

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        """(Re)open the link on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, self.port))
            listener.listen(64)
            listener.settimeout(0.2)  # so the accept loop notices a cut
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"link-{self.port}", daemon=True).start()

    start = restore

    def cut(self) -> None:
        """Refuse new connections and reset the open ones (RST, not a polite FIN)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        # shutdown() before close(): on Linux it is what wakes a thread blocked
        # in accept()/recv() on that socket; close() alone would not.
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        _log.info("link %s -> %s cut (%d connections reset)", self.address, self.target[1], len(sockets))

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the service itself is down: the client sees that
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while we connected
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
                self.connections += 1
            pair = {"sockets": (client, upstream), "pumps": 2}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: dict) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass  # reset by cut() or by either end
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)  # pass the half-close on
        with self._lock:
            pair["pumps"] -= 1
            if pair["pumps"]:
                return  # the other direction is still flowing
            for sock in pair["sockets"]:
                self._open.discard(sock)
                sock.close()
