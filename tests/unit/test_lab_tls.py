"""The lab's own CA and the server certificates it signs (src/bluegreen/lab_tls.py): what
`bluegreen lab up` leaves under state/lab/tls/ for nginx and for the clients that trust
it."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from bluegreen.lab import published_ports
from bluegreen.lab_tls import RENEW_BEFORE, ensure_lab_tls, needs_new_certificate


def made(directory: Path, hosts: list[str]) -> list[str]:
    said: list[str] = []
    ensure_lab_tls(directory, hosts, said.append)
    return said


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_https_host_gets_a_certificate_of_the_lab_ca_for_its_names(tmp_path: Path) -> None:
    said = made(tmp_path, ["single1"])
    assert len(said) == 2
    ca, server = certificate(tmp_path / "ca.crt"), certificate(tmp_path / "single1.crt")
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["single1", "localhost"]
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    for key in ("ca.key", "single1.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


def test_a_second_lab_up_keeps_what_is_still_valid(tmp_path: Path) -> None:
    made(tmp_path, ["single1"])
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert made(tmp_path, ["single1"]) == []
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_certificate_of_another_ca_or_near_its_end_is_made_again(tmp_path: Path) -> None:
    other = tmp_path / "other"
    made(other, ["single1"])
    made(tmp_path / "lab", ["single1"])
    ca = certificate(tmp_path / "lab" / "ca.crt")
    foreign, own = certificate(other / "single1.crt"), certificate(tmp_path / "lab" / "single1.crt")
    now = datetime.datetime.now(datetime.UTC)
    assert needs_new_certificate(foreign, ca, now)
    assert not needs_new_certificate(own, ca, now)
    assert needs_new_certificate(own, ca, own.not_valid_after_utc - RENEW_BEFORE)


def test_a_ca_key_that_is_not_the_certificates_makes_a_new_ca(tmp_path: Path) -> None:
    made(tmp_path / "a", ["single1"])
    made(tmp_path / "b", ["single1"])
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    said = made(tmp_path / "a", ["single1"])
    assert len(said) == 2
    ca = certificate(tmp_path / "a" / "ca.crt")
    certificate(tmp_path / "a" / "single1.crt").verify_directly_issued_by(ca)


def test_a_client_that_trusts_the_lab_ca_gets_through_and_one_that_does_not_is_refused(
    tmp_path: Path,
) -> None:
    made(tmp_path, ["single1"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "single1.crt", tmp_path / "single1.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            connection, _ = listener.accept()
            try:
                with server.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(2) == b"ok"
    stranger = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        stranger.wrap_socket(raw, server_hostname="127.0.0.1")
    thread.join(timeout=5)
    listener.close()


def test_published_ports_are_read_from_the_container_without_ssh() -> None:
    attrs = {
        "HostConfig": {
            "PortBindings": {
                "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2211"}],
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
                "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8443"}],
            }
        }
    }
    assert published_ports(attrs) == {80: 8081, 443: 8443}
    assert published_ports({"HostConfig": {"PortBindings": None}}) == {}
