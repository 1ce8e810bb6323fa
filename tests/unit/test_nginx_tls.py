"""TLS at the load balancer: the certificate chain and key bluegreen_lb gives nginx, read
and checked on the controller (module_utils/nginx_tls.py, through the role's filter)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.nginx_tls import Given, given_inputs, tls_material
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bluegreen.lab_tls import ensure_lab_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and the certificates of two hosts, each with its key (lab_tls makes them)."""
    directory = tmp_path_factory.mktemp("pki")
    ensure_lab_tls(directory, ["lb1", "lb2"], lambda _: None)
    return directory


def pem_of(pki: Path, name: str) -> str:
    return (pki / name).read_text()


def values(**given: Any) -> dict[str, Any]:
    """The role's inputs as the task passes them: every variable, empty unless given."""
    return {
        "bluegreen_lb_tls_certificate": "",
        "bluegreen_lb_tls_key": "",
        "bluegreen_lb_tls_certificate_file": "",
        "bluegreen_lb_tls_key_file": "",
        "bluegreen_lb_tls_certificate_file_text": None,
        "bluegreen_lb_tls_key_file_text": None,
    } | {f"bluegreen_lb_tls_{name}": value for name, value in given.items()}


def material(**given: Any) -> dict[str, Any]:
    certificate, key = given_inputs(values(**given))
    return tls_material(certificate, key, 443, 80).as_dict()


def secret_lines(key_pem: str) -> list[str]:
    return [line for line in key_pem.splitlines() if line and not line.startswith("-----")]


def test_a_chain_and_its_key_given_as_content_are_what_nginx_gets(pki: Path) -> None:
    chain = pem_of(pki, "lb1.crt") + pem_of(pki, "ca.crt")
    found = material(certificate=chain + "\n\n", key="  " + pem_of(pki, "lb1.key"))
    assert found["problems"] == []
    assert found["certificate"] == chain.strip() + "\n"
    assert found["key"] == pem_of(pki, "lb1.key")
    assert len(found["sha256"]) == 64


def test_files_read_on_the_controller_give_the_same_material(pki: Path) -> None:
    from_files = material(
        certificate_file=str(pki / "lb1.crt"),
        certificate_file_text=pem_of(pki, "lb1.crt"),
        key_file=str(pki / "lb1.key"),
        key_file_text=pem_of(pki, "lb1.key"),
    )
    as_content = material(certificate=pem_of(pki, "lb1.crt"), key=pem_of(pki, "lb1.key"))
    assert from_files == as_content


def test_a_new_certificate_changes_the_digest_the_converge_compares(pki: Path) -> None:
    first = material(certificate=pem_of(pki, "lb1.crt"), key=pem_of(pki, "lb1.key"))
    second = material(certificate=pem_of(pki, "lb2.crt"), key=pem_of(pki, "lb2.key"))
    assert first["sha256"] != second["sha256"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {},
            [
                "bluegreen_lb_tls is on but no certificate was given: set "
                "bluegreen_lb_tls_certificate (PEM content, e.g. from a vault variable) or "
                "bluegreen_lb_tls_certificate_file (a file on the controller)",
                "bluegreen_lb_tls is on but no private key was given: set bluegreen_lb_tls_key "
                "(PEM content, e.g. from a vault variable) or bluegreen_lb_tls_key_file (a file "
                "on the controller)",
            ],
        ),
        (
            {"certificate": "x", "certificate_file": "/etc/x.crt", "key": "y"},
            [
                "bluegreen_lb_tls_certificate and bluegreen_lb_tls_certificate_file are both "
                "set: give the certificate one way only, and remove the other variable"
            ],
        ),
        (
            {"certificate": "x", "key_file": "tls/app.key", "key_file_text": "y"},
            [
                "bluegreen_lb_tls_key_file 'tls/app.key' is a relative path: give an absolute "
                'path on the controller, e.g. "{{ inventory_dir }}/tls/app.key"'
            ],
        ),
        (
            {"certificate": "x", "key_file": "/nonexistent/app.key"},
            [
                "bluegreen_lb_tls_key_file '/nonexistent/app.key' cannot be read on the "
                "controller: no such file; fix the path or its permissions"
            ],
        ),
    ],
    ids=["neither", "both-ways", "relative", "missing-file"],
)
def test_a_chain_or_key_given_wrongly_is_named_with_the_fix(
    given: dict[str, Any], expected: list[str]
) -> None:
    found = material(**given)
    assert found["problems"] == expected
    assert (found["certificate"], found["key"], found["sha256"]) == ("", "", "")


def test_only_a_certificate_asks_for_its_key(pki: Path) -> None:
    [problem] = material(certificate=pem_of(pki, "lb1.crt"))["problems"]
    assert problem.startswith("bluegreen_lb_tls is on but no private key was given")


def test_a_key_of_another_certificate_is_refused_without_showing_it(pki: Path) -> None:
    key = pem_of(pki, "lb2.key")
    found = material(
        certificate_file=str(pki / "lb1.crt"),
        certificate_file_text=pem_of(pki, "lb1.crt"),
        key=key,
    )
    assert found["problems"] == [
        "the key of bluegreen_lb_tls_key does not belong to the first certificate of "
        "bluegreen_lb_tls_certificate_file (CN=lb1): give the key of that certificate, and "
        "put the server's certificate first in the chain"
    ]
    assert not any(line in str(found) for line in secret_lines(key))


def test_a_chain_that_starts_with_an_intermediate_is_refused(pki: Path) -> None:
    chain = pem_of(pki, "ca.crt") + pem_of(pki, "lb1.crt")
    [problem] = material(certificate=chain, key=pem_of(pki, "lb1.key"))["problems"]
    assert (
        "does not belong to the first certificate of bluegreen_lb_tls_certificate (CN=" in problem
    )


def test_a_key_in_the_certificate_variable_is_never_published(pki: Path) -> None:
    key = pem_of(pki, "lb1.key")
    found = material(certificate=pem_of(pki, "lb1.crt") + key, key=key)
    assert found["problems"] == [
        "bluegreen_lb_tls_certificate holds a private key: the certificate file nginx serves "
        "is readable by everyone; put only certificates there and the key in "
        "bluegreen_lb_tls_key or bluegreen_lb_tls_key_file"
    ]
    assert found["certificate"] == ""


def test_a_key_with_a_passphrase_is_refused_since_nginx_cannot_ask_for_it(pki: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    [problem] = material(certificate=pem_of(pki, "lb1.crt"), key=locked)["problems"]
    assert problem.startswith("bluegreen_lb_tls_key is protected by a passphrase")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"certificate": "not a certificate", "key": "not a key"},
            [
                "bluegreen_lb_tls_certificate holds no PEM certificate (-----BEGIN "
                "CERTIFICATE-----): give the server's certificate, then its intermediates, in PEM",
                "bluegreen_lb_tls_key holds no PEM private key (-----BEGIN ... PRIVATE "
                "KEY-----): give the key of the server's certificate",
            ],
        ),
        (
            {
                "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            },
            [
                "bluegreen_lb_tls_certificate holds a certificate that cannot be parsed; "
                "`openssl x509 -noout -text` on it shows what is wrong",
                "bluegreen_lb_tls_key holds a private key that cannot be parsed; `openssl pkey "
                "-noout` on it shows what is wrong",
            ],
        ),
        (
            {"certificate": "$ANSIBLE_VAULT;1.1;AES256\n6162", "key": "$ANSIBLE_VAULT;1.1;AES256"},
            [
                "bluegreen_lb_tls_certificate holds vault ciphertext as plain text: tag it !vault "
                "(the output of ansible-vault encrypt_string) so that Ansible decrypts it",
                "bluegreen_lb_tls_key holds vault ciphertext as plain text: tag it !vault (the "
                "output of ansible-vault encrypt_string) so that Ansible decrypts it",
            ],
        ),
    ],
    ids=["not-pem", "broken-pem", "vault-text"],
)
def test_what_is_not_pem_is_named(given: dict[str, Any], expected: list[str]) -> None:
    found = material(**given)
    assert found["problems"] == expected


def test_https_on_the_plain_http_port_is_refused(pki: Path) -> None:
    certificate, key = given_inputs(
        values(certificate=pem_of(pki, "lb1.crt"), key=pem_of(pki, "lb1.key"))
    )
    assert tls_material(certificate, key, 8080, 8080).problems == [
        "bluegreen_lb_https_port and bluegreen_service_public_port are both 8080: nginx "
        "cannot serve HTTP and HTTPS on one port; give bluegreen_lb_https_port another port (443)"
    ]


def test_a_folder_given_as_a_file_says_so(tmp_path: Path) -> None:
    given = Given("k", "k_file", "private key", "", str(tmp_path), None)
    assert given.source_problems() == [
        f"k_file '{tmp_path}' cannot be read on the controller: not a regular file; fix the "
        "path or its permissions"
    ]


def test_a_vault_file_without_its_password_says_so(tmp_path: Path) -> None:
    vaulted = tmp_path / "app.key"
    vaulted.write_text("$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    given = Given("k", "k_file", "private key", "", str(vaulted), None)
    assert given.source_problems() == [
        f"k_file '{vaulted}' cannot be read on the controller: it is vault-encrypted and no "
        "vault password given to bluegreen opens it; fix the path or its permissions"
    ]


def test_the_role_filter_reads_the_same_rules(pki: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "filter_plugins" / "nginx_tls.py"
    spec = importlib.util.spec_from_file_location("bluegreen_filter_nginx_tls", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    tls_filter = plugin.FilterModule().filters()["bluegreen_lb_tls_material"]
    found = tls_filter(
        values(certificate=pem_of(pki, "lb1.crt"), key=pem_of(pki, "lb2.key")), "443", 80
    )
    [problem] = found["problems"]
    assert problem.startswith("the key of bluegreen_lb_tls_key does not belong")
