"""nginx_color against a real, throwaway nginx on 127.0.0.1.

Two tiny backends answer with their colour in X-Bluegreen-Colour; nginx proxies to the
`sampleapp_live` upstream that the module manages. The tests prove that a switch moves real
traffic, and that a configuration nginx rejects leaves traffic where it was. Skipped where
nginx is not installed. Every process started here is stopped before the test ends.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nginx_color
import pytest
from ansible.module_utils.nginx_color import render_upstream

NGINX = Path("/usr/sbin/nginx")
ROOT = Path(__file__).resolve().parents[2]
REQUESTS_PER_CHECK = 10

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason=f"{NGINX} is not installed")


def colour_handler(colour: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = f"{colour}\n".encode()
            self.send_response(200)
            self.send_header("X-Bluegreen-Colour", colour)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def backends() -> Iterator[dict[str, list[str]]]:
    """A blue and a green backend on free loopback ports, as nginx_color `servers`."""
    servers: dict[str, ThreadingHTTPServer] = {}
    threads = []
    try:
        for colour in ("blue", "green"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), colour_handler(colour))
            servers[colour] = server
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            threads.append(thread)
        yield {colour: [f"127.0.0.1:{s.server_address[1]}"] for colour, s in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Nginx:
    prefix: Path
    conf: Path
    port: int
    upstream_file: Path

    def command(self, *args: str) -> list[str]:
        return [str(NGINX), "-e", str(self.prefix / "error.log"), *args, "-c", str(self.conf),
                "-p", f"{self.prefix}/"]  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def colours_served(self) -> set[str | None]:
        """The colours that answer a few fresh requests through nginx."""
        seen = set()
        for _ in range(REQUESTS_PER_CHECK):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/", headers={"Connection": "close"})
                response = connection.getresponse()
                response.read()
                seen.add(response.getheader("X-Bluegreen-Colour"))
            finally:
                connection.close()
        return seen


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/bluegreen/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sampleapp_live;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def wait_for_port(port: int, process: subprocess.Popen[bytes], error_log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}: {error_log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within 10s")


@pytest.fixture
def nginx(tmp_path: Path, backends: dict[str, list[str]]) -> Iterator[Nginx]:
    """nginx in the foreground with its own prefix, serving blue to start with."""
    prefix = tmp_path / "nginx"
    (prefix / "bluegreen").mkdir(parents=True)
    port = free_port()
    # As root the workers would otherwise run as nobody, who cannot enter pytest's tmp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, user=user))
    server = Nginx(prefix, conf, port, prefix / "bluegreen" / "sampleapp.upstream.conf")
    server.upstream_file.write_text(
        render_upstream("sampleapp", "blue", backends["blue"], 32, "max_fails=0")
    )
    process = subprocess.Popen(server.command(), start_new_session=True)
    try:
        wait_for_port(port, process, prefix / "error.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def module_args(nginx: Nginx, servers: dict[str, list[str]], **overrides: Any) -> dict[str, Any]:
    return {
        "name": "sampleapp",
        "servers": servers,
        "path": str(nginx.upstream_file),
        "test_command": nginx.command("-t", "-q"),
        "reload_command": nginx.command("-s", "reload"),
        "probe_url": nginx.url,
        "probe_timeout": 20.0,
        "probe_interval": 0.05,
        **overrides,
    }


def test_switch_moves_real_traffic_to_green_and_back(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    assert nginx.colours_served() == {"blue"}

    to_green = run_module(nginx_color.main, module_args(nginx, backends, colour="green"))

    assert to_green["failed"] is False, to_green["msg"]
    assert (to_green["changed"], to_green["previous_colour"]) == (True, "blue")
    assert to_green["active_colour"] == "green"
    assert nginx.colours_served() == {"green"}

    again = run_module(nginx_color.main, module_args(nginx, backends, colour="green"))

    assert again["changed"] is False
    assert again["probes"] == 5

    to_blue = run_module(nginx_color.main, module_args(nginx, backends, colour="blue"))

    assert (to_blue["changed"], to_blue["previous_colour"]) == (True, "green")
    assert nginx.colours_served() == {"blue"}


def test_failed_nginx_check_leaves_traffic_on_the_old_colour(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    before = nginx.upstream_file.read_bytes()

    result = run_module(
        nginx_color.main,
        module_args(nginx, backends, colour="green", server_options="bogus_param=1"),
    )

    assert result["failed"] is True
    assert "the previous upstream (colour blue) was restored and is still serving" in result["msg"]
    assert 'invalid parameter "bogus_param=1"' in result["stderr"]
    assert nginx.upstream_file.read_bytes() == before
    assert nginx.colours_served() == {"blue"}
    assert sorted(p.name for p in nginx.upstream_file.parent.iterdir()) == [
        "sampleapp.upstream.conf"
    ]


def test_module_runs_under_ansible_playbook(
    tmp_path: Path, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    """Ansible itself packs ansible.module_utils.nginx_color with the module and runs it."""
    playbook_command = Path(sys.executable).with_name("ansible-playbook")
    if not playbook_command.exists():
        pytest.skip(f"{playbook_command} is not installed")
    task_args = module_args(nginx, backends, colour="green")
    playbook = tmp_path / "switch.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {"name": "Switch to green", "nginx_color": task_args, "register": "switch"},
                        {
                            "name": "Save the result",
                            "ansible.builtin.copy": {
                                "content": "{{ switch | to_json }}",
                                "dest": str(tmp_path / "result.json"),
                            },
                        },
                    ],
                }
            ]
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LIBRARY=str(ROOT / "library"),
        ANSIBLE_MODULE_UTILS=str(ROOT / "module_utils"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
    )
    completed = subprocess.run(
        [
            str(playbook_command),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
    assert nginx.colours_served() == {"green"}
