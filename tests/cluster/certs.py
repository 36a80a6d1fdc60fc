"""The certificates of a test control plane, made with ``cryptography`` for one session.

A CA; the API server's serving certificate for 127.0.0.1 and localhost (and the in-cluster
names); client certificates for the admin (group ``system:masters``) and the controller
manager; the key pair that signs and verifies ServiceAccount tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVING_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVING_IPS = ("127.0.0.1", "10.96.0.1")


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


class Certificates:
    """Every certificate and key of one control plane, written under ``directory`` by :meth:`create`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        self.serving = KeyPair(directory / "apiserver.crt", directory / "apiserver.key")
        self.admin = KeyPair(directory / "admin.crt", directory / "admin.key")
        self.controller_manager = KeyPair(directory / "kcm.crt", directory / "kcm.key")
        self.service_account_private = directory / "sa.key"
        self.service_account_public = directory / "sa.pub"

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("floxide-test-ca")
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.ca.key, ca_key)

        def issue(
            pair: KeyPair, subject: x509.Name, usage: ExtendedKeyUsageOID, sans: list[x509.GeneralName]
        ) -> None:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            )
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            cert = builder.sign(ca_key, hashes.SHA256())
            pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_key(pair.key, key)

        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_NAMES]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
        issue(self.serving, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
        issue(self.admin, _name("floxide-test-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, [])
        issue(
            self.controller_manager,
            _name("system:kube-controller-manager"),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
        )
        signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(self.service_account_private, signing)
        self.service_account_public.write_bytes(
            signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
