"""HTTP(S) to addresses vetted beforehand (SSRF).

The connection goes to one of the given IP addresses and never resolves the name again,
while the Host header, TLS SNI and the certificate check use the URL's name. Redirects
are not followed: a receiver could point us at an internal address.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

# At most this much of a receiver's answer is read: only its status and headers matter.
MAX_BODY_READ = 1024


class _PinnedAddresses:
    """Connects to the vetted addresses in turn instead of resolving ``self.host``."""

    host: str
    port: int
    timeout: Any
    sock: Any
    addresses: list[str]

    def _connect_pinned(self) -> socket.socket:
        last_error: OSError | None = None
        for address in self.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect((address, self.port))
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last_error or OSError(f"no address to connect to for {self.host}")


class PinnedHTTPConnection(_PinnedAddresses, http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = self._connect_pinned()


class PinnedHTTPSConnection(_PinnedAddresses, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float) -> None:
        # The default context: the system's CAs, hostname check, modern protocols.
        self.tls_context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls_context)
        self.addresses = addresses

    def connect(self) -> None:
        sock = self._connect_pinned()
        # The name, not the address, for SNI and the certificate check.
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)


def pinned_post(
    *, url: str, addresses: list[str], body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, Message]:
    """POST ``body`` to ``url`` over a connection to one of ``addresses`` (in order); the
    answer's status and headers. Raises ``OSError`` (timeouts and TLS errors included) or
    ``http.client.HTTPException``."""
    parts = urlsplit(url)
    assert parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, addresses=addresses, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_BODY_READ)
        return response.status, response.headers
    finally:
        connection.close()
