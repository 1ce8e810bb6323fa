"""Local receivers for release notifications: a webhook (HTTP) and an SMTP server on 127.0.0.1.

The release's notification tasks run on the controller, so a receiver on 127.0.0.1 is
what a real Slack webhook or mail relay is to them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_paths: list[str] = field(default_factory=list)
    mails: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)

    def events(self) -> list[str]:
        """The event of each webhook call, in order (the first attachment field)."""
        return [post["attachments"][0]["fields"][0]["value"] for post in self.webhooks]

    def subjects(self) -> list[str]:
        return [str(mail["Subject"]) for mail in self.mails]

    def wait_for(self, webhooks: int, mails: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.webhooks) >= webhooks and len(self.mails) >= mails:
                return
            time.sleep(0.1)


class _MailHandler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.mails.append(
            message_from_bytes(envelope.original_content, policy=policy.default)
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def receivers() -> Iterator[tuple[str, int, Received]]:
    """A webhook URL and an SMTP port on 127.0.0.1, and what they received."""
    received = Received()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.webhook_paths.append(self.path)
            received.webhooks.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            received.logins.append(auth_data.login.decode())
            received.passwords.append(auth_data.password.decode())
        return AuthResult(success=True)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    smtp_port = free_port()
    smtp = Controller(
        _MailHandler(received),
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    smtp.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/hooks", smtp_port, received
    finally:
        smtp.stop()
        http.shutdown()
        http.server_close()
