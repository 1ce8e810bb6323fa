"""The lab's own certificate authority, and a server certificate it signs for each lab
host that publishes HTTPS (port 443), so that nginx in the lab serves TLS the way it does
in production and a client can check it against one trust root.

Everything lives under ``state/lab/tls/`` (git-ignored): ``ca.crt`` (what clients trust),
``ca.key``, and ``<host>.crt`` / ``<host>.key``, which the lab inventories give
bluegreen_lb as files. Private keys are written with mode 0600. A certificate is made
again when it is missing, was signed by another CA, or expires within RENEW_BEFORE.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "bluegreen lab CA"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)
# A client on the controller reaches a lab host through 127.0.0.1 (published ports);
# the host's own name is what the certificate is for.
LOOPBACK_NAMES: tuple[str, ...] = ("localhost",)
LOOPBACK_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "::1")


def ensure_lab_tls(directory: Path, hosts: Iterable[str], log: Callable[[str], None]) -> None:
    """The CA and a valid server certificate for each of ``hosts`` under ``directory``.

    Under an exclusive lock: test groups bring their labs up at the same time, and two
    CAs made at once would leave one's key beside the other's certificate."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _ensure_certificates(directory, hosts, log)


def _ensure_certificates(directory: Path, hosts: Iterable[str], log: Callable[[str], None]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _ensure_ca(directory, now, log)
    for host in hosts:
        certificate = directory / f"{host}.crt"
        if certificate.exists() and not needs_new_certificate(
            x509.load_pem_x509_certificate(certificate.read_bytes()), ca_cert, now
        ):
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(directory / f"{host}.key", key)
        cert = server_certificate(host, key, ca_cert, ca_key, now)
        certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log(f"lab TLS: certificate for {host} signed by the lab CA ({certificate})")


def _ensure_ca(
    directory: Path, now: datetime.datetime, log: Callable[[str], None]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_file, cert_file = directory / "ca.key", directory / "ca.crt"
    if key_file.exists() and cert_file.exists():
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and key.public_key() == cert.public_key()
            and cert.not_valid_after_utc - RENEW_BEFORE > now
        ):
            return key, cert
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_key(key_file, key)
    cert = ca_certificate(key, now)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log(f"lab TLS: made the lab CA {cert_file} (clients trust this file)")
    return key, cert


def ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def server_names(host: str) -> list[x509.GeneralName]:
    """The names a lab host's certificate is valid for: its own, and the loopback names a
    client on the controller uses through the published port."""
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    names += [x509.DNSName(name) for name in LOOPBACK_NAMES if name != host]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in LOOPBACK_ADDRESSES]
    return names


def server_certificate(
    host: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(server_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def needs_new_certificate(
    cert: x509.Certificate, ca_cert: x509.Certificate, now: datetime.datetime
) -> bool:
    """Whether a server certificate must be made again: signed by another CA, or
    expiring within RENEW_BEFORE."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return True
    return cert.not_valid_after_utc - RENEW_BEFORE <= now


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The key in PEM, readable by its owner only from the moment the file exists."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
