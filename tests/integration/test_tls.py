"""TLS at nginx on lab-single: HTTPS with a certificate of the lab's own CA (made by
`bluegreen lab up` under state/lab/tls/), HTTP/2, the redirect from plain HTTP with HSTS,
the load balancer's own requests exempt from it, and a key that does not match refused
before anything changes.

The lab serves HTTPS on 127.0.0.1:8443 with the redirect off (the suite's clients speak
plain HTTP); one test turns the redirect and HSTS on by releasing the live version again
with them (a converge, no deploy) and puts the lab's settings back the same way.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    SINGLE,
    SINGLE_URL,
    bluegreen,
    ensure_live,
    inventory_vars,
    labs_up,
    live,
    published_port,
    shell,
)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("single"),
    pytest.mark.usefixtures("live_version"),
]

HOST = "single1"
HTTP_PORT = published_port(SINGLE, HOST, 80)
HTTPS_PORT = published_port(SINGLE, HOST, 443)
LAB_TLS = ROOT / "state" / "lab" / "tls"
LAB_CA = LAB_TLS / "ca.crt"
KEY_ON_LB = "/etc/nginx/tls/sampleapp.key"
HSTS_MAX_AGE = 600


@pytest.fixture(scope="module")
def live_version() -> str:
    """The version the group's earlier tests left live; 1.0.0 on a lab without one. Only
    lab-single is brought up (idempotent), no other lab."""
    labs_up(SINGLE)
    version = live(SINGLE_URL).version
    if version is None:
        ensure_live("1.0.0", SINGLE)
        version = "1.0.0"
    return version


def lab_ca_only(alpn: list[str]) -> ssl.SSLContext:
    """A client context whose one trust root is the lab CA (no system roots)."""
    context = ssl.create_default_context(cafile=LAB_CA)
    context.set_alpn_protocols(alpn)
    return context


def handshake(context: ssl.SSLContext, server_name: str = "127.0.0.1") -> tuple[str | None, dict]:
    """The ALPN protocol nginx picked and the certificate it showed, after verification."""
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        return tls.selected_alpn_protocol(), tls.getpeercert()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get(path: str, https: bool) -> Reply:
    """One request on a new connection, trusting only the lab CA; redirects not followed."""
    connection = (
        http.client.HTTPSConnection(
            "127.0.0.1", HTTPS_PORT, timeout=10, context=lab_ca_only(["http/1.1"])
        )
        if https
        else http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=10)
    )
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def test_https_answers_with_the_lab_certificate_over_http2(live_version: str) -> None:
    protocol, certificate = handshake(lab_ca_only(["h2", "http/1.1"]))
    assert protocol == "h2"
    assert ("DNS", HOST) in certificate["subjectAltName"]

    answer = get("/", https=True)
    assert answer.status == 200
    body = json.loads(answer.body)
    assert (body["service"], body["version"]) == ("sampleapp", live_version)
    assert answer.headers.get("X-Bluegreen-Colour") in ("blue", "green")
    # The operator paths keep their rule over HTTPS: this client is not the lb's network.
    assert get("/metrics", https=True).status == 403


def test_a_client_that_does_not_trust_the_lab_ca_or_asks_another_name_is_refused() -> None:
    system_roots = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(system_roots)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(lab_ca_only(["http/1.1"]), server_name="www.example.com")


def test_a_key_that_does_not_match_the_certificate_is_refused_before_the_lock() -> None:
    with inventory_vars(SINGLE, {"bluegreen_lb_tls_key_file": str(LAB_TLS / "ca.key")}):
        refused = bluegreen("release", "--version", "1.0.0", "-i", SINGLE)
    assert (refused.exit_code, refused.outcome) == (2, "refused"), refused.report
    assert "bluegreen_lb_tls_key_file does not belong" in refused.message
    assert "nothing was changed" in refused.message
    assert get("/", https=True).status == 200


@pytest.fixture
def redirect_and_hsts(live_version: str) -> Iterator[Path]:
    """The lab converged with the redirect and HSTS on (the live version released again);
    its own settings converged back afterwards. Yields the run's artifacts folder."""
    settings = {
        "bluegreen_lb_tls_redirect": True,
        "bluegreen_lb_tls_hsts": True,
        "bluegreen_lb_tls_hsts_max_age": HSTS_MAX_AGE,
    }
    try:
        with inventory_vars(SINGLE, settings):
            converged = bluegreen("release", "--version", live_version, "-i", SINGLE)
        assert (converged.exit_code, converged.outcome) == (0, "unchanged"), converged.report
        yield Path(converged.report["run_dir"]).parent
    finally:
        back = bluegreen("release", "--version", live_version, "-i", SINGLE)
        assert back.exit_code == 0, back.report
    assert get("/", https=False).status == 200


def test_http_is_redirected_to_https_with_hsts_except_for_the_lb_itself(
    redirect_and_hsts: Path,
) -> None:
    moved = get("/notes?limit=1", https=False)
    assert moved.status == 301
    # The lab publishes 443 on another port; a client in production follows it as is.
    assert moved.headers.get("Location") == "https://127.0.0.1/notes?limit=1"
    assert moved.headers.get("Strict-Transport-Security") is None

    secure = get("/", https=True)
    assert secure.status == 200
    assert secure.headers.get("Strict-Transport-Security") == f"max-age={HSTS_MAX_AGE}"

    # What the switch's probe sees: plain HTTP on loopback, answered with the colour.
    probe = shell(HOST, "curl -s -D - -o /dev/null --max-time 5 http://127.0.0.1/health", SINGLE)
    assert probe["stdout_lines"][0].startswith("HTTP/1.1 200"), probe
    assert "x-bluegreen-colour:" in probe["stdout"].lower()

    mode = shell(HOST, f"stat -c '%a %U' {KEY_ON_LB}", SINGLE)["stdout"]
    assert mode == "600 root"
    key_lines = [
        line
        for line in (LAB_TLS / f"{HOST}.key").read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    assert key_lines
    for path in redirect_and_hsts.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(line in text for line in key_lines), f"the key is in {path}"
    on_lb = shell(HOST, f"grep -rlF '{key_lines[-1]}' /var/lib/bluegreen /var/log", SINGLE)
    assert on_lb["stdout"] == "", "the key is in the journal or a log of the lb"
