"""HTTP(S) to addresses vetted beforehand (SSRF), within one overall deadline.

The connection goes to one of the given IP addresses and never resolves the name again,
while the Host header, TLS SNI and the certificate check use the URL's name. Redirects
are not followed: a receiver could point us at an internal address.

A socket timeout bounds one step (one connect, one read), not a send: a receiver that
trickles its answer a byte at a time, or a name with many addresses that never answer,
could keep a send going for minutes. So every step here gets the smaller of the
per-step timeout and the time left before the send's ``Deadline``, and the answer is
read in small chunks, each under that same bound.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

# At most this much of a receiver's answer is read: only its status and headers matter.
MAX_BODY_READ = 1024
# Reads from the receiver ask for at most this much at a time.
READ_CHUNK = 1024


class SendDeadlineExceeded(TimeoutError):
    """The receiver did not answer in full before the send's deadline."""


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.monotonic()``) by which one send must be over."""

    seconds: float
    expires_at: float = field(default=0.0)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds=seconds, expires_at=time.monotonic() + seconds)

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def step_timeout(self, per_step: float) -> float:
        """The timeout of the next socket step; raises once the deadline has passed."""
        left = self.expires_at - time.monotonic()
        if left <= 0:
            raise self.exceeded()
        return min(per_step, left)

    def exceeded(self) -> SendDeadlineExceeded:
        return SendDeadlineExceeded(
            f"receiver too slow: no complete answer within {self.seconds:g} s"
        )


class _DeadlineReader(io.RawIOBase):
    """The answer's bytes, each read bounded by the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline, per_step: float) -> None:
        self._sock = sock
        # The socket's own reader, so that the socket stays open until the answer is
        # closed, as http.client expects when it hands the connection to the response.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._per_step = per_step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.step_timeout(self._per_step))
        with memoryview(buffer) as view:
            return self._raw.readinto(view[:READ_CHUNK])

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client`` sees of the connected socket: sending and reading under the
    deadline. (``sendall``'s timeout bounds the whole call, not each chunk sent.)"""

    def __init__(self, sock: socket.socket, deadline: Deadline, per_step: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._per_step = per_step

    def sendall(self, data: Any) -> None:
        self._sock.settimeout(self._deadline.step_timeout(self._per_step))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        assert mode == "rb"
        reader = _DeadlineReader(self._sock, self._deadline, self._per_step)
        return io.BufferedReader(reader, buffer_size=READ_CHUNK)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _PinnedAddresses:
    """Connects to the vetted addresses in turn instead of resolving ``self.host``."""

    host: str
    port: int
    timeout: Any
    sock: Any
    addresses: list[str]
    deadline: Deadline

    def _connect_pinned(self) -> socket.socket:
        last_error: OSError | None = None
        for address in self.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                # One connect call is bounded as a whole by its timeout.
                sock.settimeout(self.deadline.step_timeout(self.timeout))
                sock.connect((address, self.port))
            except OSError as exc:
                sock.close()
                if isinstance(exc, SendDeadlineExceeded) or self.deadline.expired():
                    raise self.deadline.exceeded() from exc
                last_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last_error or OSError(f"no address to connect to for {self.host}")


class PinnedHTTPConnection(_PinnedAddresses, http.client.HTTPConnection):
    def __init__(
        self, host: str, port: int, *, addresses: list[str], timeout: float, deadline: Deadline
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses
        self.deadline = deadline

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._connect_pinned(), self.deadline, self.timeout)


class PinnedHTTPSConnection(_PinnedAddresses, http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, *, addresses: list[str], timeout: float, deadline: Deadline
    ) -> None:
        # The default context: the system's CAs, hostname check, modern protocols.
        self.tls_context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls_context)
        self.addresses = addresses
        self.deadline = deadline

    def connect(self) -> None:
        sock = self._connect_pinned()
        try:
            # The handshake as a whole is bounded by the socket's timeout.
            sock.settimeout(self.deadline.step_timeout(self.timeout))
            # The name, not the address, for SNI and the certificate check.
            tls_sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(tls_sock, self.deadline, self.timeout)


def pinned_post(
    *,
    url: str,
    addresses: list[str],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    deadline: Deadline,
) -> tuple[int, Message]:
    """POST ``body`` to ``url`` over a connection to one of ``addresses`` (in order); the
    answer's status and headers. ``timeout`` bounds each step, ``deadline`` the whole:
    past it, ``SendDeadlineExceeded``. Raises ``OSError`` (timeouts and TLS errors
    included) or ``http.client.HTTPException``."""
    parts = urlsplit(url)
    assert parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(
        parts.hostname, port, addresses=addresses, timeout=timeout, deadline=deadline
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_BODY_READ)
        return response.status, response.headers
    except (OSError, http.client.HTTPException) as exc:
        # A step cut short by the deadline ends as a plain timeout or a truncated answer.
        if deadline.expired() and not isinstance(exc, SendDeadlineExceeded):
            raise deadline.exceeded() from exc
        raise
    finally:
        connection.close()
