"""The outside world of webhook deliveries, stubbed: DNS answers and routes to addresses.

``FakeNetwork`` answers ``socket.getaddrinfo`` for the names it knows (each name with a
sequence of answers, the last one repeated: a rebinding attacker's DNS), and sends
connections to the public (IPv4) addresses it routes to a local receiver, recording where each
connection was meant to go. Anything else goes to the real resolver and network.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_real_getaddrinfo = socket.getaddrinfo
_real_socket = socket.socket


@dataclass
class FakeNetwork:
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(name)
        sequence = self.answers[name]
        addresses = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        infos: list[Any] = []
        for address in addresses:
            if ":" in address:
                infos.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0))
                )
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)))
        return infos

    def socket_class(self) -> type:
        network = self

        class RoutedSocket(_real_socket):
            def connect(self, address: Any) -> None:
                target = (str(address[0]), int(address[1]))
                network.connections.append(target)
                super().connect(network.routes.get(target, address))

        return RoutedSocket


def tls_server_context(directory: Any, name: str) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for ``name`` issued by a fresh test CA, and the
    path of that CA's certificate (for ``SSL_CERT_FILE``)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )  # fmt: skip
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("CreditGuard test CA", ca_key, "CreditGuard test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name, key, "CreditGuard test CA", ca_key, False)
    ca_file = Path(directory) / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = Path(directory) / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return context, str(ca_file)
