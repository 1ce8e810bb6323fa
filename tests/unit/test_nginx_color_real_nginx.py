"""nginx_color and nginx_maintenance against a real, throwaway nginx on 127.0.0.1.

Two tiny backends answer with their colour in X-Bluegreen-Colour; nginx proxies to the
`sampleapp_blue` or `sampleapp_green` upstream that nginx_color manages, green while its
flag file exists, unless the maintenance flag that nginx_maintenance manages exists. The
tests prove that a switch moves real traffic without a reload and without losing a
request of keep-alive clients, that maintenance mode answers users with the page and
Retry-After, and that a configuration nginx rejects leaves everything as it was.
Skipped where nginx is not installed. Every process started here is stopped before the
test ends.
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
import nginx_maintenance
import pytest
from ansible.module_utils.nginx_color import render_upstreams

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

    @property
    def live_flag(self) -> Path:
        return self.prefix / "bluegreen" / "sampleapp.green-live"

    @property
    def maintenance_include(self) -> Path:
        return self.prefix / "maintenance" / "sampleapp.maintenance.conf"

    @property
    def maintenance_flag(self) -> Path:
        return self.prefix / "www" / "maintenance.on"

    @property
    def maintenance_page(self) -> Path:
        return self.prefix / "www" / "maintenance.html"

    def reloads(self) -> int:
        """How many times the master reloaded its configuration (from its error log)."""
        return (self.prefix / "error.log").read_text().count("(SIGHUP) received")

    def get(self, path: str = "/") -> tuple[int, str | None, str]:
        """Status, Retry-After and body of one fresh request through nginx."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read().decode()
            return response.status, response.getheader("Retry-After"), body
        finally:
            connection.close()

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
    split_clients "$http_x_client" $bluegreen_sampleapp_bucket {{
{buckets}
        * c99;
    }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        set $bluegreen_sampleapp_colour blue;
        if (-f {prefix}/bluegreen/sampleapp.green-live) {{
            set $bluegreen_sampleapp_colour green;
        }}
        if (-f {prefix}/bluegreen/sampleapp.canary/green/$bluegreen_sampleapp_bucket) {{
            set $bluegreen_sampleapp_colour green;
        }}
        if (-f {prefix}/bluegreen/sampleapp.canary/blue/$bluegreen_sampleapp_bucket) {{
            set $bluegreen_sampleapp_colour blue;
        }}
        location / {{
            if (-f {prefix}/www/maintenance.on) {{
                return 503;
            }}
            error_page 503 /_bluegreen/maintenance.html;
            proxy_pass http://sampleapp_$bluegreen_sampleapp_colour;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /_bluegreen/maintenance.html {{
            internal;
            root {prefix}/www;
            try_files /maintenance.html =503;
            include {prefix}/maintenance/sampleapp.maintenance.conf;
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
    # The buckets as the bluegreen_lb role's site hashes clients into them (1 % each).
    buckets = "\n".join(f"        1% c{index:02d};" for index in range(99))
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, user=user, buckets=buckets))
    server = Nginx(prefix, conf, port, prefix / "bluegreen" / "sampleapp.upstream.conf")
    server.upstream_file.write_text(
        render_upstreams("sampleapp", backends, 32, "max_fails=0", str(server.live_flag))
    )
    # As the role's first install leaves a load balancer: include and page, no flag.
    server.maintenance_include.parent.mkdir()
    server.maintenance_include.write_text("add_header Retry-After 300 always;\n")
    server.maintenance_page.parent.mkdir()
    server.maintenance_page.write_text("<p>Back soon</p>\n")
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


def test_switch_moves_real_traffic_to_green_and_back_without_a_reload(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    assert nginx.colours_served() == {"blue"}

    to_green = run_module(nginx_color.main, module_args(nginx, backends, colour="green"))

    assert to_green["failed"] is False, to_green["msg"]
    assert (to_green["changed"], to_green["previous_colour"]) == (True, "blue")
    assert (to_green["active_colour"], to_green["reloaded"]) == ("green", False)
    assert nginx.live_flag.exists()
    assert nginx.colours_served() == {"green"}

    again = run_module(nginx_color.main, module_args(nginx, backends, colour="green"))

    assert again["changed"] is False
    assert again["probes"] == 5

    to_blue = run_module(nginx_color.main, module_args(nginx, backends, colour="blue"))

    assert (to_blue["changed"], to_blue["previous_colour"]) == (True, "green")
    assert not nginx.live_flag.exists()
    assert nginx.colours_served() == {"blue"}
    assert nginx.reloads() == 0


def colour_of_each_client(nginx: Nginx, clients: int = 400) -> dict[int, str | None]:
    """The colour that answers each of `clients` clients (told apart by X-Client)."""
    seen = {}
    for client in range(clients):
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
        try:
            connection.request("GET", "/", headers={"X-Client": f"client-{client}"})
            response = connection.getresponse()
            response.read()
            seen[client] = response.getheader("X-Bluegreen-Colour")
        finally:
            connection.close()
    return seen


def test_a_canary_moves_a_share_of_clients_each_for_good_and_a_switch_ends_it(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    canary = nginx.prefix / "bluegreen" / "sampleapp.canary"

    five = run_module(nginx_color.main, module_args(nginx, backends, colour="green", canary=5))

    assert five["failed"] is False, five["msg"]
    assert (five["changed"], five["active_colour"], five["probes"]) == (True, "blue", 0)
    assert five["canary"] == {"colour": "green", "percent": 5}
    assert sorted(p.name for p in (canary / "green").iterdir()) == [f"c0{i}" for i in range(5)]
    first = colour_of_each_client(nginx)
    on_green = {client for client, colour in first.items() if colour == "green"}
    assert 8 <= len(on_green) <= 32, len(on_green)  # 5 % of 400 clients, give or take
    assert colour_of_each_client(nginx) == first  # each client stays where it is

    half = run_module(nginx_color.main, module_args(nginx, backends, colour="green", canary=50))

    assert (half["previous_canary"], half["canary"]["percent"]) == (five["canary"], 50)
    second = colour_of_each_client(nginx)
    assert all(second[client] == "green" for client in on_green)
    assert 160 <= sum(colour == "green" for colour in second.values()) <= 240

    back = run_module(nginx_color.main, module_args(nginx, backends, colour="blue"))

    assert (back["changed"], back["previous_colour"], back["canary"]) == (True, "blue", None)
    assert set(colour_of_each_client(nginx, 100).values()) == {"blue"}
    assert list((canary / "green").iterdir()) == []

    run_module(nginx_color.main, module_args(nginx, backends, colour="green", canary=30))
    switched = run_module(nginx_color.main, module_args(nginx, backends, colour="green"))

    assert (switched["active_colour"], switched["previous_canary"]["percent"]) == ("green", 30)
    assert set(colour_of_each_client(nginx, 100).values()) == {"green"}
    assert list((canary / "green").iterdir()) == []
    assert nginx.reloads() == 0


def test_a_canary_of_the_live_colour_is_refused(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    refused = run_module(nginx_color.main, module_args(nginx, backends, colour="blue", canary=5))

    assert refused["failed"] is True
    assert "blue is live already" in refused["msg"]
    assert not (nginx.prefix / "bluegreen" / "sampleapp.canary").exists()


class KeepAliveClients:
    """Clients that each keep one connection open and pause between requests, as a
    browser or a proxy in front of nginx does: the requests a reload would cut."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered: dict[str | None, int] = {}
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                colour = response.getheader("X-Bluegreen-Colour")
                with self.lock:
                    self.answered[colour] = self.answered.get(colour, 0) + 1
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failed.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.stop.wait(0.005)
        connection.close()

    def __enter__(self) -> KeepAliveClients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_keep_alive_clients_lose_no_request_over_ten_switches(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    with KeepAliveClients(nginx.port, clients=4) as clients:
        for colour in ["green", "blue"] * 5:
            result = run_module(
                nginx_color.main, module_args(nginx, backends, colour=colour, probe_successes=3)
            )
            assert (result["failed"], result["active_colour"]) == (False, colour), result
            time.sleep(0.1)

    assert clients.failed == []
    assert set(clients.answered) == {"blue", "green"}
    assert sum(clients.answered.values()) > 200
    assert nginx.reloads() == 0


def test_changed_servers_reload_once_and_keep_the_live_colour(
    run_module, nginx: Nginx, backends: dict[str, list[str]]
) -> None:
    run_module(nginx_color.main, module_args(nginx, backends, colour="green"))
    grown = {"blue": [*backends["blue"], "127.0.0.1:9"], "green": backends["green"]}

    result = run_module(nginx_color.main, module_args(nginx, grown, colour="green"))

    assert (result["changed"], result["reloaded"]) == (True, True)
    assert "server 127.0.0.1:9 max_fails=0;" in nginx.upstream_file.read_text()
    assert nginx.live_flag.exists()
    assert nginx.colours_served() == {"green"}
    assert nginx.reloads() == 1


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


def maintenance_args(nginx: Nginx, **overrides: Any) -> dict[str, Any]:
    return {
        "site_path": str(nginx.conf),
        "flag_path": str(nginx.maintenance_flag),
        "include_path": str(nginx.maintenance_include),
        "page_path": str(nginx.maintenance_page),
        "test_command": nginx.command("-t", "-q"),
        "reload_command": nginx.command("-s", "reload"),
        **overrides,
    }


def wait_for_retry_after(nginx: Nginx, expected: str, in_a_row: int = 5) -> None:
    """Old workers finish after a reload: wait until fresh requests keep getting `expected`."""
    deadline = time.monotonic() + 10
    streak = 0
    while streak < in_a_row:
        seen = nginx.get()[1]
        streak = streak + 1 if seen == expected else 0
        assert time.monotonic() < deadline, f"nginx kept sending Retry-After {seen}"
        time.sleep(0.05)


def test_maintenance_answers_users_with_the_page_then_serves_again_with_one_reload(
    run_module, nginx: Nginx
) -> None:
    assert nginx.get()[0] == 200

    turned_on = run_module(
        nginx_maintenance.main,
        maintenance_args(nginx, maintenance=True, retry_after=120, page_content="<p>Upgrade</p>"),
    )

    assert turned_on["failed"] is False, turned_on["msg"]
    assert (turned_on["changed"], turned_on["reloaded"]) == (True, True)
    wait_for_retry_after(nginx, "120")
    assert nginx.get() == (503, "120", "<p>Upgrade</p>")
    assert nginx.reloads() == 1

    turned_off = run_module(nginx_maintenance.main, maintenance_args(nginx, maintenance=False))

    assert (turned_off["changed"], turned_off["reloaded"]) == (True, False)
    status, retry_after, body = nginx.get()
    assert (status, retry_after, body) == (200, None, "blue\n")
    assert nginx.colours_served() == {"blue"}
    assert nginx.reloads() == 1


def test_maintenance_is_refused_for_a_site_that_does_not_check_the_flag(
    run_module, nginx: Nginx, tmp_path: Path
) -> None:
    old_site = tmp_path / "old-site.conf"
    old_site.write_text("location / { proxy_pass http://sampleapp_live; }\n")

    result = run_module(
        nginx_maintenance.main,
        maintenance_args(nginx, maintenance=True, site_path=str(old_site)),
    )

    assert result["failed"] is True
    assert f"the site {old_site} does not check {nginx.maintenance_flag}" in result["msg"]
    assert "converge nginx first" in result["msg"]
    assert not nginx.maintenance_flag.exists()
    assert nginx.get()[0] == 200


def test_failed_nginx_check_puts_the_maintenance_files_back(run_module, nginx: Nginx) -> None:
    before = {
        path: path.read_bytes() for path in (nginx.maintenance_include, nginx.maintenance_page)
    }
    # Something else in the configuration that nginx rejects makes nginx -t fail.
    (nginx.prefix / "bluegreen" / "broken.conf").write_text("bogus_directive on;\n")

    result = run_module(
        nginx_maintenance.main,
        maintenance_args(nginx, maintenance=True, retry_after=60, page_content="<p>new</p>"),
    )

    assert result["failed"] is True
    assert "every file was put back as it was and nginx still serves them" in result["msg"]
    assert 'unknown directive "bogus_directive"' in result["failed_command"]["stderr"]
    assert {path: path.read_bytes() for path in before} == before
    assert not nginx.maintenance_flag.exists()
    assert nginx.get() == (200, None, "blue\n")
    assert sorted(p.name for p in nginx.maintenance_include.parent.iterdir()) == [
        "sampleapp.maintenance.conf"
    ]
