"""nginx_color end to end in-process, against a fake nginx that routes by the file it loaded.

The fake stands in for `nginx -t`, the reload and the probed traffic: `nginx -t` rejects a
file containing "bogus", a reload makes nginx serve the colour recorded in the file, and
every probe answers with the colour nginx serves. So the tests can assert what a user
cares about: which colour serves, and what is on disk.
"""

from __future__ import annotations

import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import nginx_color
import pytest
import yaml
from ansible.module_utils import nginx_config
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_color import ProbeResult, ProbeSettings, render_upstream

SERVERS = {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002"]}
TEST = ["nginx", "-t"]
RELOAD = ["systemctl", "reload", "nginx"]


class FakeNginx:
    """nginx as the module sees it: a config test, a reload, and the colour that answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.serving: str | None = None
        self.commands: list[list[str]] = []
        self.failing_reloads = 0
        self.reload_takes_effect = True

    def loaded_colour(self) -> str | None:
        if not self.path.exists():
            return None
        marker = self.path.read_text().splitlines()[0]
        return marker.rsplit("colour=", 1)[1]

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.commands.append(list(args))
        if args == TEST:
            if self.path.exists() and "bogus" in self.path.read_text():
                return 1, "", f'nginx: [emerg] invalid parameter "bogus=1" in {self.path}:4\n'
            return 0, "", "nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
        if args == RELOAD:
            if self.failing_reloads:
                self.failing_reloads -= 1
                return 1, "", "Job for nginx.service failed.\n"
            if self.reload_takes_effect:
                self.serving = self.loaded_colour()
            return 0, "", ""
        raise FileNotFoundError(2, "No such file or directory", args[0])

    def probe(self, settings: ProbeSettings, timeout: float) -> ProbeResult:
        if self.serving is None:
            return ProbeResult(status=None, header=None, error="[Errno 111] Connection refused")
        return ProbeResult(status=200, header=self.serving)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bluegreen" / "sampleapp.upstream.conf"


@pytest.fixture
def nginx(path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNginx:
    fake = FakeNginx(path)
    monkeypatch.setattr(
        AnsibleModule, "run_command", lambda self, args, **kwargs: fake.run_command(args, **kwargs)
    )
    monkeypatch.setattr(nginx_color, "probe_once", fake.probe)
    return fake


def serve(nginx: FakeNginx, colour: str, **render: Any) -> bytes:
    """Put the managed file for `colour` in place and have nginx serve it, as after a release."""
    options = {"keepalive": 32, "server_options": "max_fails=0", **render}
    content = render_upstream(
        "sampleapp", colour, SERVERS[colour], options["keepalive"], options["server_options"]
    ).encode()
    nginx.path.parent.mkdir(parents=True, exist_ok=True)
    nginx.path.write_bytes(content)
    nginx.serving = colour
    return content


def args(path: Path, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sampleapp",
        "colour": "green",
        "servers": SERVERS,
        "path": str(path),
        "probe_interval": 0.0,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def leftovers(path: Path) -> list[str]:
    """Temporary files the module left next to the managed file."""
    if not path.parent.exists():
        return []
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


class TestSwitch:
    def test_blue_to_green_writes_reloads_and_traffic_reaches_green(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is False
        assert result["changed"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert nginx.serving == "green"
        assert path.read_text() == render_upstream(
            "sampleapp", "green", ["10.0.0.5:8002"], 32, "max_fails=0"
        )
        assert nginx.commands == [TEST, RELOAD]
        assert result["probes"] == 5
        assert result["last_probe"] == {
            "status": 200,
            "header": "green",
            "error": None,
            "version": None,
        }
        assert isinstance(result["switch_ms"], float)
        assert result["switch_ms"] >= 0
        assert result["path"] == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert leftovers(path) == []
        assert "diff" not in result

    def test_first_switch_creates_the_directory_and_file(
        self, run_module, nginx: FakeNginx, tmp_path: Path
    ) -> None:
        path = tmp_path / "etc" / "nginx" / "bluegreen" / "sampleapp.upstream.conf"
        nginx.path = path

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["changed"] is True
        assert result["previous_colour"] is None
        assert result["active_colour"] == "blue"
        assert nginx.serving == "blue"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "etc").stat().st_mode) == 0o755
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_same_colour_is_unchanged_not_reloaded_but_still_proven(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        content = serve(nginx, "green")
        mtime = path.stat().st_mtime_ns

        result = run_module(nginx_color.main, args(path))

        assert result["changed"] is False
        assert (result["previous_colour"], result["active_colour"]) == ("green", "green")
        assert nginx.commands == []
        assert result["probes"] == 5
        assert result["switch_ms"] is None
        assert path.read_bytes() == content
        assert path.stat().st_mtime_ns == mtime

    def test_changed_servers_of_the_live_colour_are_rewritten(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")
        servers = {"blue": SERVERS["blue"], "green": ["10.0.0.5:8002", "10.0.0.6:8002"]}

        result = run_module(nginx_color.main, args(path, servers=servers))

        assert result["changed"] is True
        assert result["previous_colour"] == "green"
        assert "server 10.0.0.6:8002 max_fails=0;" in path.read_text()
        assert nginx.commands == [TEST, RELOAD]

    def test_without_probe_url_nothing_is_probed(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, probe_url=""))

        assert result["changed"] is True
        assert result["probes"] == 0
        assert result["last_probe"] is None
        assert isinstance(result["switch_ms"], float)
        assert nginx.serving == "green"


class TestCheckAndDiff:
    def test_check_mode_reports_the_change_and_touches_nothing(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        content = serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path), check_mode=True)

        assert result["changed"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert path.read_bytes() == content
        assert nginx.commands == []
        assert nginx.serving == "blue"
        assert result["probes"] == 0
        assert result["switch_ms"] is None

    def test_check_mode_creates_no_file_or_directory(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path), check_mode=True)

        assert result["changed"] is True
        assert result["previous_colour"] is None
        assert not path.parent.exists()

    def test_check_mode_without_change_is_unchanged(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path), check_mode=True)

        assert result["changed"] is False
        assert result["probes"] == 0

    def test_diff_shows_old_and_new_upstream(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue").decode()

        result = run_module(nginx_color.main, args(path), check_mode=True, diff=True)

        assert result["diff"] == {
            "before": before,
            "after": render_upstream("sampleapp", "green", ["10.0.0.5:8002"], 32, "max_fails=0"),
            "before_header": str(path),
            "after_header": str(path),
        }

    def test_diff_of_a_new_file_starts_empty(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path), diff=True)

        assert result["diff"]["before"] == ""
        assert result["diff"]["after"].startswith(
            "# managed by bluegreen nginx_color: name=sampleapp colour=green\n"
        )


class TestRefusedRequests:
    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"colour": "red"}, "value of colour must be one of: blue, green, other, got: red"),
            (
                {"servers": {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5"]}},
                "server '10.0.0.5' is not valid: write it as host:port",
            ),
            ({"servers": {"blue": ["10.0.0.5:8001"]}}, "servers.green is empty or missing"),
            ({"servers": None}, "servers is required to switch to green"),
            ({"name": "sample-app"}, "name 'sample-app' is not valid"),
            ({"server_options": "max_fails=0; include /tmp/x"}, "contains ';'"),
        ],
    )
    def test_bad_request_fails_clearly_and_writes_nothing(
        self,
        run_module,
        nginx: FakeNginx,
        path: Path,
        overrides: dict[str, Any],
        expected: str,
    ) -> None:
        content = serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, **overrides))

        assert result["failed"] is True
        assert expected in result["msg"]
        assert path.read_bytes() == content
        assert nginx.commands == []
        assert nginx.serving == "blue"

    @pytest.mark.parametrize("colour", [None, "green"])
    def test_unmanaged_file_is_refused_and_left_alone(
        self, run_module, nginx: FakeNginx, path: Path, colour: str | None
    ) -> None:
        path.parent.mkdir(parents=True)
        path.write_text("upstream sampleapp_live { server 10.0.0.9:80; }\n")

        result = run_module(nginx_color.main, args(path, colour=colour))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"{path} exists but is not managed by bluegreen" in result["msg"]
        assert "Move the file aside" in result["msg"]
        assert path.read_text() == "upstream sampleapp_live { server 10.0.0.9:80; }\n"
        assert nginx.commands == []


class TestFailedCheckOrReload:
    def test_failed_nginx_check_restores_previous_file_and_blue_keeps_serving(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue", keepalive=8, server_options="max_fails=0 weight=3")

        result = run_module(nginx_color.main, args(path, server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert result["msg"].startswith(f"nginx -t failed after writing {path}: nginx: [emerg]")
        assert (
            "the previous upstream (colour blue) was restored and is still serving" in result["msg"]
        )
        assert result["rc"] == 1
        assert 'invalid parameter "bogus=1"' in result["stderr"]
        assert result["cmd"] == TEST
        assert result["previous_colour"] == result["active_colour"] == "blue"
        assert path.read_bytes() == before
        assert nginx.commands == [TEST]
        assert nginx.serving == "blue"
        assert leftovers(path) == []

    def test_failed_nginx_check_without_previous_file_removes_the_new_one(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path, server_options="bogus=1"))

        assert result["failed"] is True
        assert f"{path} was removed again" in result["msg"]
        assert result["previous_colour"] is None
        assert not path.exists()
        assert leftovers(path) == []
        assert nginx.commands == [TEST]

    def test_missing_test_program_is_a_failed_check_not_a_crash(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue")

        result = run_module(
            nginx_color.main, args(path, test_command=["/usr/local/sbin/nginx", "-t"])
        )

        assert result["failed"] is True
        assert result["rc"] == 127
        assert "cannot run /usr/local/sbin/nginx" in result["msg"]
        assert "(colour blue) was restored" in result["msg"]
        assert path.read_bytes() == before

    def test_failed_restore_says_the_new_file_is_still_in_place(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "blue")
        monkeypatch.setattr(nginx_config, "restore", lambda module, path, previous: "disk full")

        result = run_module(nginx_color.main, args(path, server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is True
        assert result["active_colour"] == "green"
        assert (
            f"putting the previous content of {path} back also failed: disk full" in (result["msg"])
        )
        assert "restore it by hand" in result["msg"]

    def test_failed_write_leaves_the_previous_file_and_runs_nothing(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")

        def read_only(module: AnsibleModule, path: str, content: bytes) -> None:
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(nginx_config, "write_atomic", read_only)

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"could not write {path}: [Errno 30] Read-only file system" in result["msg"]
        assert "traffic is where it was" in result["msg"]
        assert path.read_bytes() == before
        assert nginx.commands == []

    def test_path_under_a_file_cannot_be_read_and_says_so(
        self, run_module, nginx: FakeNginx, tmp_path: Path
    ) -> None:
        (tmp_path / "bluegreen").write_text("a file where the directory should be\n")
        path = tmp_path / "bluegreen" / "sampleapp.upstream.conf"

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert f"could not read {path}: Not a directory" in result["msg"]
        assert nginx.commands == []

    def test_failed_reload_restores_and_reloads_the_previous_colour(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue")
        nginx.failing_reloads = 1

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert result["msg"].startswith(
            f"systemctl reload nginx failed after writing {path}: Job for nginx.service failed."
        )
        assert "(colour blue) was restored" in result["msg"]
        assert "nginx was reloaded with it" in result["msg"]
        assert path.read_bytes() == before
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.serving == "blue"

    def test_reload_failing_twice_says_nginx_needs_a_look(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue")
        nginx.failing_reloads = 2

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert "reloading nginx again also failed" in result["msg"]
        assert "systemctl status nginx" in result["msg"]
        assert path.read_bytes() == before


class TestProbes:
    def test_probe_timeout_fails_with_counts_and_the_way_back(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "blue")
        nginx.reload_takes_effect = False

        result = run_module(nginx_color.main, args(path, probe_timeout=0.2, probe_interval=0.01))

        assert result["failed"] is True
        assert result["changed"] is True
        assert result["previous_colour"] == "blue"
        assert result["active_colour"] == "green"
        assert result["probes"] > 1
        assert result["last_probe"] == {
            "status": 200,
            "header": "blue",
            "error": None,
            "version": None,
        }
        assert f"nginx was reloaded with {path} routing to green" in result["msg"]
        assert f"{result['probes']} probes of http://127.0.0.1/" in result["msg"]
        assert "last seen: HTTP 200 with X-Bluegreen-Colour: 'blue'" in result["msg"]
        assert "run again with colour=blue" in result["msg"]

    def test_rerun_that_finds_nginx_down_fails_without_changing_anything(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")
        nginx.serving = None

        result = run_module(nginx_color.main, args(path, probe_timeout=0.1, probe_interval=0.01))

        assert result["failed"] is True
        assert result["changed"] is False
        assert "nothing was changed or reloaded" in result["msg"]
        assert "no response ([Errno 111] Connection refused)" in result["msg"]
        assert nginx.commands == []


class TestRead:
    def test_without_colour_returns_the_active_colour_only(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        content = serve(nginx, "green")

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["failed"] is False
        assert result["changed"] is False
        assert result["active_colour"] == result["previous_colour"] == "green"
        assert result["probes"] == 0
        assert path.read_bytes() == content
        assert nginx.commands == []

    def test_without_file_there_is_no_active_colour(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["changed"] is False
        assert result["active_colour"] is None
        assert not path.exists()

    def test_unreadable_file_says_what_to_do(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        path.mkdir(parents=True)

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["failed"] is True
        assert f"could not read {path}" in result["msg"]
        assert "become: true" in result["msg"]


def test_default_path_is_under_etc_nginx_bluegreen(
    run_module, nginx: FakeNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nginx_color, "read_file", lambda path: None)

    result = run_module(nginx_color.main, {"name": "sampleapp"})

    assert result["path"] == "/etc/nginx/bluegreen/sampleapp.upstream.conf"
    assert result["active_colour"] is None


def test_examples_and_return_are_valid_yaml() -> None:
    examples = yaml.safe_load(nginx_color.EXAMPLES)
    returned = yaml.safe_load(nginx_color.RETURN)

    assert all("nginx_color" in task or "ansible.builtin.debug" in task for task in examples)
    assert {"previous_colour", "active_colour", "path", "switch_ms", "probes", "last_probe"} <= (
        returned.keys()
    )


class ProbeTarget(BaseHTTPRequestHandler):
    """Answers like a colour behind nginx; records the Host and Connection headers it got."""

    seen: ClassVar[list[tuple[str | None, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host"), self.headers.get("Connection")))
        routes = {
            "/green": (200, {"X-Bluegreen-Colour": "green"}),
            "/maintenance": (503, {"X-Bluegreen-Colour": "green"}),
            "/bare": (200, {}),
            "/moved": (302, {"Location": "/green"}),
        }
        status, headers = routes[self.path]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def probe_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProbeTarget)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    ProbeTarget.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def probe_settings_for(url: str, host_header: str | None = None) -> ProbeSettings:
    return ProbeSettings(
        url=url,
        host_header=host_header,
        header="X-Bluegreen-Colour",
        successes=1,
        timeout=5.0,
        interval=0.0,
    )


class TestProbeOnce:
    def test_reads_the_colour_header_on_a_closed_connection(self, probe_target: str) -> None:
        result = nginx_color.probe_once(probe_settings_for(f"{probe_target}/green"), 2.0)

        assert result == ProbeResult(status=200, header="green")
        assert ProbeTarget.seen[-1][1] == "close"

    def test_any_status_carries_the_colour(self, probe_target: str) -> None:
        result = nginx_color.probe_once(probe_settings_for(f"{probe_target}/maintenance"), 2.0)

        assert result == ProbeResult(status=503, header="green")

    def test_missing_header_and_redirects_are_not_a_colour(self, probe_target: str) -> None:
        assert nginx_color.probe_once(
            probe_settings_for(f"{probe_target}/bare"), 2.0
        ) == ProbeResult(status=200, header=None)
        assert nginx_color.probe_once(
            probe_settings_for(f"{probe_target}/moved"), 2.0
        ) == ProbeResult(status=302, header=None)

    def test_sends_the_host_header(self, probe_target: str) -> None:
        nginx_color.probe_once(probe_settings_for(f"{probe_target}/green", "app.example.com"), 2.0)

        assert ProbeTarget.seen[-1][0] == "app.example.com"

    def test_refused_connection_is_a_result_not_an_exception(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]

        result = nginx_color.probe_once(probe_settings_for(f"http://127.0.0.1:{closed_port}/"), 2.0)

        assert result.status is None
        assert result.header is None
        assert result.error


class TestPrecheck:
    def test_switch_to_a_colour_whose_server_is_down_is_refused_and_writes_nothing(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        asked: list[str] = []

        def direct(
            settings: ProbeSettings, timeout: float, version_header: str = ""
        ) -> ProbeResult:
            asked.append(settings.url)
            if settings.url.startswith("http://10.0.0.5:8002"):
                return ProbeResult(status=None, header=None, error="Connection refused")
            return nginx.probe(settings, timeout)

        monkeypatch.setattr(nginx_color, "probe_once", direct)

        result = run_module(nginx_color.main, args(path, precheck_path="/health"))

        assert result["failed"]
        assert asked == ["http://10.0.0.5:8002/health"]
        assert "refusing to switch to green" in result["msg"]
        assert "10.0.0.5:8002/health did not answer (Connection refused)" in result["msg"]
        assert "traffic stays on blue" in result["msg"]
        assert result["changed"] is False
        assert path.read_bytes() == before
        assert nginx.serving == "blue"
        assert nginx.commands == []

    def test_switch_to_a_healthy_colour_records_each_server_answer(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "blue")

        def direct(
            settings: ProbeSettings, timeout: float, version_header: str = ""
        ) -> ProbeResult:
            if settings.url == "http://10.0.0.5:8002/health":
                return ProbeResult(status=200, header="green")
            return nginx.probe(settings, timeout)

        monkeypatch.setattr(nginx_color, "probe_once", direct)

        result = run_module(nginx_color.main, args(path, precheck_path="health"))

        assert not result["failed"], result
        assert result["precheck"] == {
            "10.0.0.5:8002": {"status": 200, "header": "green", "error": None, "version": None}
        }
        assert nginx.serving == "green"

    def test_switch_to_a_colour_running_a_refused_version_writes_nothing(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        headers: list[str] = []

        def direct(
            settings: ProbeSettings, timeout: float, version_header: str = ""
        ) -> ProbeResult:
            if settings.url == "http://10.0.0.5:8002/health":
                headers.append(version_header)
                return ProbeResult(status=200, header="green", version="2.0.1+crash")
            return nginx.probe(settings, timeout)

        monkeypatch.setattr(nginx_color, "probe_once", direct)

        result = run_module(
            nginx_color.main,
            args(
                path,
                precheck_path="/health",
                precheck_version_header="X-Bluegreen-Version",
                precheck_refuse_versions={"2.0.1+crash": "marked bad by release r7"},
            ),
        )

        assert result["failed"]
        assert headers == ["X-Bluegreen-Version"]
        assert "10.0.0.5:8002 runs 2.0.1+crash, marked bad by release r7" in result["msg"]
        assert "Release a verified version to green instead" in result["msg"]
        assert path.read_bytes() == before
        assert nginx.commands == []

    def test_no_precheck_when_the_colour_is_live_already(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, precheck_path="/health"))

        assert result["changed"] is False
        assert result["precheck"] == {}


class TestOtherColour:
    def test_other_switches_away_from_the_live_colour(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="other"))

        assert not result["failed"], result
        assert (result["previous_colour"], result["active_colour"]) == ("green", "blue")
        assert nginx.serving == "blue"

    def test_other_without_a_live_colour_is_refused(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path, colour="other"))

        assert result["failed"]
        assert "needs a live colour to switch away from" in result["msg"]
        assert not path.exists()
