"""A real TLS-only redis-server for tests, with a self-signed certificate for 127.0.0.1/localhost.

Without TLS support in this redis-server the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.redis.conftest import IN_CI, RedisServer

__all__ = ["self_signed_certificate", "tls_redis_server"]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, signing itself (so it is its own CA), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floxide test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / "server.crt", directory / "server.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key_file


@contextlib.contextmanager
def tls_redis_server(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    """A redis-server that speaks only TLS (clients need no certificate), and its CA file."""
    directory = tmp_path / "redis-tls"
    directory.mkdir()
    cert, key = self_signed_certificate(directory)
    server = RedisServer(directory, client_options={"ssl": True, "ssl_ca_certs": str(cert)})
    server.args = [
        "--save", "", "--appendonly", "no", "--port", "0", "--tls-port", str(server.port),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    try:
        server.start()
    except RuntimeError as exc:
        if not IN_CI and "tls" in str(exc).lower():
            pytest.skip(f"this redis-server does not support TLS: {str(exc)[-200:]}")
        raise
    try:
        yield server, cert
    finally:
        server.stop()
