# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""TLS at the load balancer: the certificate chain and key that bluegreen_lb gives nginx,
checked on the controller before any load balancer is touched.

Each of the two is given one way: as PEM content (the key from an Ansible vault
variable) or as a file on the controller. What is wrong is said naming the variable and
the fix. The key is a secret: no message, repr or return value here quotes it, and the
only things derived from it that leave this module are the PEM text itself (for the
no_log task that writes it) and a digest (for the converge's fingerprint).

Runs on the controller only (through filter_plugins/nginx_tls.py), so it may use the
``cryptography`` package that ansible-core itself depends on. It imports nothing of ours.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# The inputs, by the name the inventory gives them.
CERTIFICATE = "bluegreen_lb_tls_certificate"
KEY = "bluegreen_lb_tls_key"
CERTIFICATE_FILE = "bluegreen_lb_tls_certificate_file"
KEY_FILE = "bluegreen_lb_tls_key_file"
HTTPS_PORT = "bluegreen_lb_https_port"
HTTP_PORT = "bluegreen_service_public_port"

PRIVATE_KEY_MARK = "PRIVATE KEY-----"
CERTIFICATE_MARK = "-----BEGIN CERTIFICATE-----"
VAULT_MARK = "$ANSIBLE_VAULT;"


@dataclass(frozen=True)
class Given:
    """One of the two (the chain or the key) as the inventory gives it: ``content`` from
    the content variable, ``path`` from the file variable, ``file_text`` what the
    controller read from that file (None when it could not be read)."""

    content_variable: str
    file_variable: str
    what: str
    content: str
    path: str
    file_text: str | None

    def source_problems(self) -> list[str]:
        """Why this cannot be read at all: given neither way, both ways, or a file that is
        not an absolute, readable path."""
        if self.content and self.path:
            return [
                f"{self.content_variable} and {self.file_variable} are both set: give the "
                f"{self.what} one way only, and remove the other variable"
            ]
        if not self.content and not self.path:
            return [
                f"bluegreen_lb_tls is on but no {self.what} was given: set "
                f"{self.content_variable} (PEM content, e.g. from a vault variable) or "
                f"{self.file_variable} (a file on the controller)"
            ]
        if self.path and not os.path.isabs(self.path):
            example = "{{ inventory_dir }}/tls/" + os.path.basename(self.path)
            return [
                f"{self.file_variable} '{self.path}' is a relative path: give an absolute path "
                f'on the controller, e.g. "{example}"'
            ]
        if self.path and self.file_text is None:
            return [
                f"{self.file_variable} '{self.path}' cannot be read on the controller: "
                f"{unreadable_reason(self.path)}; fix the path or its permissions"
            ]
        return []

    @property
    def variable(self) -> str:
        """The variable the PEM text came from."""
        return self.file_variable if self.path else self.content_variable

    @property
    def text(self) -> str:
        return (self.file_text if self.path else self.content) or ""


@dataclass(frozen=True)
class Material:
    """What nginx is given: the chain and the key as PEM (each ending in a newline), and
    a digest of both that changes whenever either does; or the problems found."""

    certificate: str
    key: str
    digest: str
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "certificate": self.certificate,
            "key": self.key,
            "sha256": self.digest,
            "problems": self.problems,
        }


def unreadable_reason(path: str) -> str:
    """Why the controller could not read ``path``, in words."""
    if not os.path.lexists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a regular file"
    try:
        with open(path, "rb") as handle:
            vault = handle.read(len(VAULT_MARK)) == VAULT_MARK.encode()
    except OSError as exc:
        return exc.strerror or "the user running bluegreen may not read it"
    if vault:
        return "it is vault-encrypted and no vault password given to bluegreen opens it"
    return "Ansible could not read it"


def vault_problem(variable: str) -> str:
    return (
        f"{variable} holds vault ciphertext as plain text: tag it !vault (the output of "
        "ansible-vault encrypt_string) so that Ansible decrypts it"
    )


def certificate_problems(variable: str, text: str) -> tuple[list[str], list[x509.Certificate]]:
    """Problems of the PEM chain of ``variable``, and the certificates read from it."""
    if PRIVATE_KEY_MARK in text:
        # The chain is written world-readable: a key in it would be published.
        return [
            f"{variable} holds a private key: the certificate file nginx serves is readable "
            f"by everyone; put only certificates there and the key in {KEY} or {KEY_FILE}"
        ], []
    if text.lstrip().startswith(VAULT_MARK):
        return [vault_problem(variable)], []
    if CERTIFICATE_MARK not in text:
        return [
            f"{variable} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the "
            "server's certificate, then its intermediates, in PEM"
        ], []
    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return [
            f"{variable} holds a certificate that cannot be parsed; `openssl x509 -noout "
            "-text` on it shows what is wrong"
        ], []
    return [], chain


def key_problems(variable: str, text: str) -> tuple[list[str], Any]:
    """Problems of the PEM private key of ``variable``, and the key read from it. No
    message quotes the key or the parser's words about it."""
    if text.lstrip().startswith(VAULT_MARK):
        return [vault_problem(variable)], None
    if PRIVATE_KEY_MARK not in text:
        return [
            f"{variable} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----): give the "
            "key of the server's certificate"
        ], None
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        return [
            f"{variable} is protected by a passphrase, which nginx cannot be given at a "
            "reload: remove it (openssl pkey -in KEY -out KEY.plain) and keep the key in "
            "a vault instead"
        ], None
    except ValueError:
        return [
            f"{variable} holds a private key that cannot be parsed; `openssl pkey -noout` "
            "on it shows what is wrong"
        ], None
    return [], key


def public_bytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pair_problems(certificate: Given, key: Given, chain: list, private_key: Any) -> list[str]:
    """Whether the first certificate of the chain (the server's own, which nginx sends
    first) is the one of the key."""
    if public_bytes(chain[0].public_key()) == public_bytes(private_key.public_key()):
        return []
    return [
        f"the key of {key.variable} does not belong to the first certificate of "
        f"{certificate.variable} ({chain[0].subject.rfc4514_string()}): give the key "
        "of that certificate, and put the server's certificate first in the chain"
    ]


def port_problems(https_port: int, http_port: int) -> list[str]:
    if https_port != http_port:
        return []
    return [
        f"{HTTPS_PORT} and {HTTP_PORT} are both {https_port}: nginx cannot serve HTTP and "
        f"HTTPS on one port; give {HTTPS_PORT} another port (443)"
    ]


def pem(text: str) -> str:
    """PEM text as written to a file: stripped, with one final newline."""
    return text.strip() + "\n"


def tls_material(certificate: Given, key: Given, https_port: int, http_port: int) -> Material:
    """The chain and key nginx gets, or every problem that stops them (no PEM text is
    returned then)."""
    problems = port_problems(https_port, http_port)
    problems += certificate.source_problems() + key.source_problems()
    if problems:
        return Material("", "", "", problems)
    chain_problems, chain = certificate_problems(certificate.variable, certificate.text)
    private_problems, private_key = key_problems(key.variable, key.text)
    problems = chain_problems + private_problems
    if not problems:
        problems = pair_problems(certificate, key, chain, private_key)
    if problems:
        return Material("", "", "", problems)
    chain_pem, key_pem = pem(certificate.text), pem(key.text)
    digest = hashlib.sha256((chain_pem + key_pem).encode()).hexdigest()
    return Material(chain_pem, key_pem, digest, [])


def given_inputs(values: Mapping[str, Any]) -> tuple[Given, Given]:
    """The chain and key as the role's variables give them: ``values`` maps each input
    variable's name to its value, and ``<file variable>_text`` to what the controller read
    from that file (None when unreadable)."""
    return (
        Given(
            CERTIFICATE,
            CERTIFICATE_FILE,
            "certificate",
            str(values.get(CERTIFICATE) or ""),
            str(values.get(CERTIFICATE_FILE) or ""),
            _text_or_none(values.get(f"{CERTIFICATE_FILE}_text")),
        ),
        Given(
            KEY,
            KEY_FILE,
            "private key",
            str(values.get(KEY) or ""),
            str(values.get(KEY_FILE) or ""),
            _text_or_none(values.get(f"{KEY_FILE}_text")),
        ),
    )


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
