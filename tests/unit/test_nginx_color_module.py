"""nginx_color end to end in-process, against a fake nginx whose site routes by the flag file.

The fake stands in for `nginx -t`, the reload and the probed traffic. `nginx -t` rejects an
include containing "bogus"; a reload loads the include on disk; and, like the role's site,
every request goes to green while the flag file exists and to blue otherwise, through the
upstreams of the include nginx loaded last (an include from before the flag switch, with a
`colour=` marker, serves its one colour). So the tests can assert what a user cares about:
which colour serves, whether nginx was reloaded, and what is on disk.
"""

from __future__ import annotations

import re
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
from ansible.module_utils.nginx_color import (
    ProbeResult,
    ProbeSettings,
    flag_content,
    render_upstreams,
)

SERVERS = {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002"]}
MORE_SERVERS = {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002", "10.0.0.6:8002"]}
TEST = ["nginx", "-t"]
RELOAD = ["systemctl", "reload", "nginx"]
GREEN_FLAG = flag_content("green", "sampleapp")
_UPSTREAM_RE = re.compile(r"^upstream sampleapp_(\w+) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)


def legacy_include(colour: str) -> bytes:
    """An include as bluegreen wrote it before the flag switch: one upstream, one colour."""
    return (
        f"# managed by bluegreen nginx_color: name=sampleapp colour={colour}\n"
        "# Written by bluegreen nginx_color; edits are replaced on the next switch.\n"
        "upstream sampleapp_live {\n"
        f"    server {SERVERS[colour][0]} max_fails=0;\n"
        "    keepalive 32;\n"
        "}\n"
    ).encode()


class FakeNginx:
    """nginx as the module sees it: a config test, a reload, and a site routing by `flag`."""

    def __init__(self, path: Path, flag: Path) -> None:
        self.path = path
        # The flag file the site tests on every request.
        self.flag = flag
        self.loaded: str | None = None
        self.running = True
        self.commands: list[list[str]] = []
        # Whether the flag existed when each reload was asked for, and what served right after.
        self.flag_at_reload: list[bool] = []
        self.served_after_reload: list[str | None] = []
        self.failing_reloads = 0

    def serving(self) -> str | None:
        if not self.running or self.loaded is None:
            return None
        marker = self.loaded.splitlines()[0]
        if " colour=" in marker:
            return marker.rsplit("colour=", 1)[1]
        return "green" if self.flag.exists() else "blue"

    def has_servers(self, colour: str) -> bool:
        """Whether the loaded upstream of `colour` has a server that is not marked down."""
        assert self.loaded is not None
        if " colour=" in self.loaded.splitlines()[0]:
            return True
        blocks = dict(_UPSTREAM_RE.findall(self.loaded))
        lines = [line.strip() for line in blocks[colour].splitlines()]
        return any(line.startswith("server ") and " down" not in line for line in lines)

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.commands.append(list(args))
        if args == TEST:
            if self.path.exists() and "bogus" in self.path.read_text():
                return 1, "", f'nginx: [emerg] invalid parameter "bogus=1" in {self.path}:6\n'
            return 0, "", "nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
        if args == RELOAD:
            self.flag_at_reload.append(self.flag.exists())
            if self.failing_reloads:
                self.failing_reloads -= 1
                return 1, "", "Job for nginx.service failed.\n"
            self.loaded = self.path.read_text() if self.path.exists() else None
            self.served_after_reload.append(self.serving())
            return 0, "", ""
        raise FileNotFoundError(2, "No such file or directory", args[0])

    def probe(self, settings: ProbeSettings, timeout: float) -> ProbeResult:
        colour = self.serving()
        if colour is None:
            return ProbeResult(status=None, header=None, error="[Errno 111] Connection refused")
        if not self.has_servers(colour):
            return ProbeResult(status=502, header=None)
        return ProbeResult(status=200, header=colour)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bluegreen" / "sampleapp.upstream.conf"


@pytest.fixture
def flag(path: Path) -> Path:
    """The default flag file: beside the include, `<name>.green-live`."""
    return path.parent / "sampleapp.green-live"


@pytest.fixture
def nginx(path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNginx:
    fake = FakeNginx(path, flag)
    monkeypatch.setattr(
        AnsibleModule, "run_command", lambda self, args, **kwargs: fake.run_command(args, **kwargs)
    )
    monkeypatch.setattr(nginx_color, "probe_once", fake.probe)
    return fake


def render(flag: Path, servers: dict[str, list[str]] = SERVERS, **options: Any) -> str:
    """The include the module writes for `servers` (defaults: keepalive 32, max_fails=0)."""
    settings = {"keepalive": 32, "server_options": "max_fails=0", **options}
    return render_upstreams(
        "sampleapp", servers, settings["keepalive"], settings["server_options"], str(flag)
    )


def serve(nginx: FakeNginx, colour: str, **options: Any) -> bytes:
    """Put the include and the flag for `colour` in place and have nginx load them."""
    content = render(nginx.flag, **options).encode()
    nginx.path.parent.mkdir(parents=True, exist_ok=True)
    nginx.path.write_bytes(content)
    if colour == "green":
        nginx.flag.write_bytes(GREEN_FLAG)
    nginx.loaded = content.decode()
    return content


def serve_legacy(nginx: FakeNginx, colour: str) -> bytes:
    """Put an include from before the flag switch in place, loaded, as an upgrade finds it."""
    content = legacy_include(colour)
    nginx.path.parent.mkdir(parents=True, exist_ok=True)
    nginx.path.write_bytes(content)
    nginx.loaded = content.decode()
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
    """Temporary files the module left next to the include and its flag."""
    if not path.parent.exists():
        return []
    keep = {path.name, "sampleapp.green-live"}
    return sorted(p.name for p in path.parent.iterdir() if p.name not in keep)


def mtimes(*paths: Path) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


class TestFlip:
    """With the include as it should be, a switch is the flag alone: no test, no reload."""

    def test_blue_to_green_creates_only_the_flag_and_reloads_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        include = serve(nginx, "blue")
        before = mtimes(path)

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is False
        assert result["changed"] is True
        assert result["reloaded"] is False
        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert nginx.commands == []
        assert flag.read_bytes() == GREEN_FLAG
        assert stat.S_IMODE(flag.stat().st_mode) == 0o644
        assert path.read_bytes() == include
        assert mtimes(path) == before
        assert nginx.serving() == "green"
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
        assert result["flag_path"] == str(flag)
        assert leftovers(path) == []
        assert "diff" not in result

    def test_green_back_to_blue_removes_the_flag_and_reloads_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        include = serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["changed"] is True
        assert result["reloaded"] is False
        assert (result["previous_colour"], result["active_colour"]) == ("green", "blue")
        assert not flag.exists()
        assert path.read_bytes() == include
        assert nginx.commands == []
        assert nginx.serving() == "blue"
        assert result["last_probe"]["header"] == "blue"

    @pytest.mark.parametrize("colour", ["blue", "green"])
    def test_same_colour_is_unchanged_not_reloaded_but_still_proven(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, colour: str
    ) -> None:
        include = serve(nginx, colour)
        before = mtimes(path, flag) if colour == "green" else mtimes(path)

        result = run_module(nginx_color.main, args(path, colour=colour))

        assert result["changed"] is False
        assert result["reloaded"] is False
        assert (result["previous_colour"], result["active_colour"]) == (colour, colour)
        assert nginx.commands == []
        assert result["probes"] == 5
        assert result["last_probe"]["header"] == colour
        assert result["switch_ms"] is None
        assert path.read_bytes() == include
        assert flag.exists() is (colour == "green")
        assert (mtimes(path, flag) if colour == "green" else mtimes(path)) == before

    def test_a_flag_touched_by_hand_is_green_and_is_left_as_it_is(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "blue")
        flag.touch()
        before = mtimes(flag)

        read = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})
        result = run_module(nginx_color.main, args(path))

        assert read["active_colour"] == "green"
        assert result["changed"] is False
        assert result["previous_colour"] == "green"
        assert flag.read_bytes() == b""
        assert mtimes(flag) == before
        assert nginx.commands == []

    def test_a_flag_removed_by_hand_is_blue(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "green")
        flag.unlink()

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["changed"] is False
        assert result["previous_colour"] == "blue"
        assert not flag.exists()
        assert nginx.commands == []

    def test_without_probe_url_nothing_is_probed(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, probe_url=""))

        assert result["changed"] is True
        assert result["probes"] == 0
        assert result["last_probe"] is None
        assert isinstance(result["switch_ms"], float)
        assert nginx.serving() == "green"


class TestIncludeChange:
    """When the include itself changes: flag held, include tested and loaded, flag moved."""

    def test_first_switch_creates_the_directory_and_include_without_a_flag(
        self, run_module, nginx: FakeNginx, tmp_path: Path
    ) -> None:
        path = tmp_path / "etc" / "nginx" / "bluegreen" / "sampleapp.upstream.conf"
        flag = path.parent / "sampleapp.green-live"
        nginx.path, nginx.flag = path, flag

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert result["previous_colour"] is None
        assert result["active_colour"] == "blue"
        assert result["flag_path"] == str(flag)
        assert path.read_text() == render(flag)
        assert not flag.exists()
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.serving() == "blue"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "etc").stat().st_mode) == 0o755
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_first_switch_to_green_sets_the_flag_before_nginx_loads_the_include(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert (result["previous_colour"], result["active_colour"]) == (None, "green")
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.flag_at_reload == [True]
        assert flag.read_bytes() == GREEN_FLAG
        assert nginx.serving() == "green"

    def test_include_names_both_upstreams_and_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        run_module(nginx_color.main, args(path, keepalive=0, server_options="weight=2"))

        content = path.read_text()
        assert content.splitlines()[0] == (
            f"# managed by bluegreen nginx_color: name=sampleapp flag={flag}"
        )
        assert "upstream sampleapp_blue {\n    server 10.0.0.5:8001 weight=2;\n}\n" in content
        assert "upstream sampleapp_green {\n    server 10.0.0.5:8002 weight=2;\n}\n" in content

    def test_a_colour_without_servers_is_defined_with_a_down_server(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        result = run_module(
            nginx_color.main, args(path, colour="blue", servers={"blue": ["10.0.0.5:8001"]})
        )

        assert result["failed"] is False
        assert (
            "upstream sampleapp_green {\n"
            "    # green has no servers yet: its requests get 502 at once.\n"
            "    server 127.0.0.1:9 down;\n"
        ) in path.read_text()

    def test_changed_servers_of_the_live_colour_reload_and_keep_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "green")
        flag_mtime = mtimes(flag)

        result = run_module(nginx_color.main, args(path, servers=MORE_SERVERS))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("green", "green")
        assert path.read_text() == render(flag, MORE_SERVERS)
        assert "server 10.0.0.6:8002 max_fails=0;" in path.read_text()
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.flag_at_reload == [True]
        assert nginx.served_after_reload == ["green"]
        assert flag.read_bytes() == GREEN_FLAG
        assert mtimes(flag) == flag_mtime
        assert isinstance(result["switch_ms"], float)

    def test_changed_options_of_the_live_blue_reload_and_create_no_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, colour="blue", keepalive=8))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert path.read_text() == render(flag, keepalive=8)
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.flag_at_reload == [False]
        assert not flag.exists()

    def test_changed_servers_and_a_switch_to_green_reload_on_blue_then_create_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, servers=MORE_SERVERS))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.flag_at_reload == [False]
        assert nginx.served_after_reload == ["blue"]
        assert flag.read_bytes() == GREEN_FLAG
        assert nginx.serving() == "green"

    def test_changed_servers_and_a_switch_to_blue_reload_on_green_then_remove_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue", servers=MORE_SERVERS))

        assert (result["previous_colour"], result["active_colour"]) == ("green", "blue")
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.flag_at_reload == [True]
        assert nginx.served_after_reload == ["green"]
        assert not flag.exists()
        assert nginx.serving() == "blue"

    def test_flag_path_is_recorded_in_the_include_and_used_from_there(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, tmp_path: Path
    ) -> None:
        custom = tmp_path / "run" / "sampleapp.live-green"
        nginx.flag = custom

        first = run_module(nginx_color.main, args(path, flag_path=str(custom)))
        second = run_module(nginx_color.main, args(path, colour="blue"))

        assert first["flag_path"] == second["flag_path"] == str(custom)
        assert path.read_text().splitlines()[0].endswith(f" flag={custom}")
        assert (second["previous_colour"], second["active_colour"]) == ("green", "blue")
        assert second["changed"] is True
        assert second["reloaded"] is False
        assert not custom.exists()
        assert not flag.exists()
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.serving() == "blue"

    def test_a_new_flag_path_rewrites_the_include_once(
        self, run_module, nginx: FakeNginx, path: Path, tmp_path: Path
    ) -> None:
        serve(nginx, "blue")
        custom = tmp_path / "run" / "sampleapp.live-green"
        nginx.flag = custom

        result = run_module(nginx_color.main, args(path, colour="blue", flag_path=str(custom)))
        again = run_module(nginx_color.main, args(path, colour="blue", flag_path=str(custom)))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert path.read_text() == render(custom)
        assert again["changed"] is False
        assert nginx.commands == [TEST, RELOAD]

    def test_a_new_flag_path_keeps_green_serving_through_the_reload(
        self, run_module, nginx: FakeNginx, path: Path, tmp_path: Path
    ) -> None:
        serve(nginx, "green")
        old_flag = nginx.flag
        custom = tmp_path / "run" / "sampleapp.live-green"
        nginx.flag = custom

        result = run_module(nginx_color.main, args(path, flag_path=str(custom)))

        assert result["previous_colour"] == "green"
        assert nginx.served_after_reload == ["green"]
        assert custom.exists()
        assert not old_flag.exists()

    def test_a_default_flag_path_nginx_cannot_test_is_refused_before_writing(
        self, run_module, nginx: FakeNginx, tmp_path: Path
    ) -> None:
        path = tmp_path / "blue green" / "sampleapp.upstream.conf"
        nginx.path, nginx.flag = path, path.parent / "sampleapp.green-live"

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["failed"] is True
        assert "flag_path" in result["msg"]
        assert not path.exists()
        assert nginx.commands == []


class TestLegacyInclude:
    """An include from before the flag switch: `colour=` marker, one `<name>_live` upstream."""

    @pytest.mark.parametrize("colour", ["blue", "green"])
    def test_legacy_file_is_read_as_its_colour_whatever_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, colour: str
    ) -> None:
        include = serve_legacy(nginx, colour)
        if colour == "blue":
            flag.write_bytes(b"stale\n")

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["failed"] is False
        assert result["active_colour"] == result["previous_colour"] == colour
        assert result["flag_path"] == str(flag)
        assert path.read_bytes() == include
        assert flag.exists() is (colour == "blue")
        assert nginx.commands == []

    def test_legacy_green_switched_to_blue_is_rewritten_and_ends_without_a_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve_legacy(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["failed"] is False
        assert result["changed"] is True
        assert result["reloaded"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("green", "blue")
        assert path.read_text() == render(flag)
        assert nginx.commands == [TEST, RELOAD]
        # The flag holds green while nginx loads the new include, so the reload moves nothing.
        assert nginx.flag_at_reload == [True]
        assert nginx.served_after_reload == ["green"]
        assert not flag.exists()
        assert nginx.serving() == "blue"
        assert leftovers(path) == []

    def test_legacy_green_kept_green_is_rewritten_with_the_flag_and_not_prechecked(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve_legacy(nginx, "green")
        asked: list[str] = []

        def direct(
            settings: ProbeSettings, timeout: float, version_header: str = ""
        ) -> ProbeResult:
            asked.append(settings.url)
            return nginx.probe(settings, timeout)

        monkeypatch.setattr(nginx_color, "probe_once", direct)

        result = run_module(nginx_color.main, args(path, precheck_path="/health"))

        assert result["changed"] is True
        assert result["reloaded"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("green", "green")
        assert path.read_text() == render(flag)
        assert nginx.flag_at_reload == [True]
        assert flag.read_bytes() == GREEN_FLAG
        assert result["precheck"] == {}
        assert all(url == "http://127.0.0.1/" for url in asked)

    def test_legacy_blue_with_a_stale_flag_loses_it_before_the_reload(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve_legacy(nginx, "blue")
        flag.write_bytes(b"stale\n")

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["changed"] is True
        assert result["previous_colour"] == result["active_colour"] == "blue"
        assert nginx.flag_at_reload == [False]
        assert nginx.served_after_reload == ["blue"]
        assert not flag.exists()

    def test_legacy_blue_switched_to_green_reloads_then_creates_the_flag(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve_legacy(nginx, "blue")

        result = run_module(nginx_color.main, args(path))

        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert nginx.flag_at_reload == [False]
        assert nginx.served_after_reload == ["blue"]
        assert flag.read_bytes() == GREEN_FLAG
        assert nginx.serving() == "green"


class TestCheckAndDiff:
    def test_check_mode_reports_a_flip_and_touches_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        content = serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path), check_mode=True)

        assert result["changed"] is True
        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert path.read_bytes() == content
        assert not flag.exists()
        assert nginx.commands == []
        assert nginx.serving() == "blue"
        assert result["probes"] == 0
        assert result["switch_ms"] is None

    def test_check_mode_reports_an_include_change_and_touches_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        content = serve_legacy(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue"), check_mode=True)

        assert result["changed"] is True
        assert path.read_bytes() == content
        assert not flag.exists()
        assert nginx.commands == []
        assert leftovers(path) == []

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

    def test_diff_of_a_flip_shows_the_include_unchanged_and_the_flag_created(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve(nginx, "blue").decode()

        result = run_module(nginx_color.main, args(path), check_mode=True, diff=True)

        assert result["diff"] == [
            {
                "before": before,
                "after": before,
                "before_header": str(path),
                "after_header": str(path),
            },
            {
                "before": "absent: blue serves\n",
                "after": "present: green serves\n",
                "before_header": str(flag),
                "after_header": str(flag),
            },
        ]

    def test_diff_of_a_flip_to_blue_shows_the_flag_removed(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue"), diff=True)

        assert result["diff"][1]["before"] == "present: green serves\n"
        assert result["diff"][1]["after"] == "absent: blue serves\n"

    def test_diff_of_an_include_change_shows_old_and_new_include(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve(nginx, "green").decode()

        result = run_module(
            nginx_color.main, args(path, servers=MORE_SERVERS), check_mode=True, diff=True
        )

        include, flag_state = result["diff"]
        assert include == {
            "before": before,
            "after": render(flag, MORE_SERVERS),
            "before_header": str(path),
            "after_header": str(path),
        }
        assert flag_state["before"] == flag_state["after"] == "present: green serves\n"

    def test_diff_of_a_new_file_starts_empty(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path, colour="blue"), diff=True)

        include, flag_state = result["diff"]
        assert include["before"] == ""
        assert include["after"].startswith(
            f"# managed by bluegreen nginx_color: name=sampleapp flag={flag}\n"
        )
        assert flag_state["before"] == flag_state["after"] == "absent: blue serves\n"

    @pytest.mark.parametrize("prepare", [None, serve_legacy], ids=["first-install", "legacy-green"])
    def test_diff_shows_the_flag_created_before_the_reload(
        self, run_module, nginx: FakeNginx, path: Path, prepare: Any
    ) -> None:
        if prepare is not None:
            prepare(nginx, "green")

        result = run_module(nginx_color.main, args(path), check_mode=True, diff=True)

        assert result["diff"][1]["after"] == "present: green serves\n"


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
            (
                {"flag_path": "sampleapp.green-live"},
                "flag_path 'sampleapp.green-live' is not valid",
            ),
            (
                {"flag_path": "/etc/nginx/conf.d/sampleapp.conf"},
                "flag_path '/etc/nginx/conf.d/sampleapp.conf' is not valid",
            ),
            (
                {"flag_path": "/etc/nginx/green live"},
                "flag_path '/etc/nginx/green live' is not valid",
            ),
            (
                {"flag_path": "/etc/nginx/live;return 200"},
                "flag_path '/etc/nginx/live;return 200' is not valid",
            ),
            (
                {"flag_path": "/etc/nginx/bluegreen/../sampleapp.green-live"},
                "flag_path '/etc/nginx/bluegreen/../sampleapp.green-live' is not valid",
            ),
        ],
    )
    def test_bad_request_fails_clearly_and_writes_nothing(
        self,
        run_module,
        nginx: FakeNginx,
        path: Path,
        flag: Path,
        overrides: dict[str, Any],
        expected: str,
    ) -> None:
        content = serve(nginx, "blue")

        result = run_module(nginx_color.main, args(path, **overrides))

        assert result["failed"] is True
        assert not result.get("changed")
        assert expected in result["msg"]
        assert path.read_bytes() == content
        assert not flag.exists()
        assert leftovers(path) == []
        assert nginx.commands == []
        assert nginx.serving() == "blue"

    def test_bad_flag_path_is_refused_when_only_reading_too(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(
            nginx_color.main,
            {"name": "sampleapp", "path": str(path), "flag_path": "/etc/nginx/live.conf"},
        )

        assert result["failed"] is True
        assert "flag_path '/etc/nginx/live.conf' is not valid" in result["msg"]

    @pytest.mark.parametrize("colour", [None, "green"])
    def test_unmanaged_file_is_refused_and_left_alone(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, colour: str | None
    ) -> None:
        path.parent.mkdir(parents=True)
        path.write_text("upstream sampleapp_live { server 10.0.0.9:80; }\n")

        result = run_module(nginx_color.main, args(path, colour=colour))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"{path} exists but is not managed by bluegreen" in result["msg"]
        assert "Move the file aside" in result["msg"]
        assert path.read_text() == "upstream sampleapp_live { server 10.0.0.9:80; }\n"
        assert not flag.exists()
        assert nginx.commands == []

    def test_file_managed_for_another_name_is_refused(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        path.parent.mkdir(parents=True)
        other = render_upstreams("otherapp", SERVERS, 32, "", str(flag))
        path.write_text(other)

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert "managed by bluegreen for name=otherapp, not name=sampleapp" in result["msg"]
        assert path.read_text() == other
        assert not flag.exists()
        assert nginx.commands == []


class TestFailedCheckOrReload:
    def test_failed_nginx_check_restores_previous_file_and_blue_keeps_serving(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
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
        assert result["flag_path"] == str(flag)
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == [TEST]
        assert nginx.serving() == "blue"
        assert leftovers(path) == []

    def test_failed_nginx_check_while_green_leaves_the_flag_untouched(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve(nginx, "green")
        flag_mtime = mtimes(flag)

        result = run_module(nginx_color.main, args(path, server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert path.read_bytes() == before
        assert flag.read_bytes() == GREEN_FLAG
        assert mtimes(flag) == flag_mtime
        assert nginx.commands == [TEST]
        assert nginx.serving() == "green"

    def test_failed_nginx_check_on_a_legacy_green_file_removes_the_flag_again(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve_legacy(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="blue", server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert result["previous_colour"] == result["active_colour"] == "green"
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == [TEST]
        assert nginx.serving() == "green"
        assert leftovers(path) == []

    def test_failed_nginx_check_puts_a_removed_stale_flag_back_as_it_was(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve_legacy(nginx, "blue")
        flag.write_bytes(b"stale\n")

        result = run_module(nginx_color.main, args(path, colour="blue", server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert path.read_bytes() == before
        assert flag.read_bytes() == b"stale\n"
        assert nginx.commands == [TEST]

    @pytest.mark.parametrize("colour", ["blue", "green"])
    def test_failed_nginx_check_without_previous_file_removes_the_new_ones(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, colour: str
    ) -> None:
        result = run_module(nginx_color.main, args(path, colour=colour, server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"{path} was removed again" in result["msg"]
        assert result["previous_colour"] is None
        assert not path.exists()
        assert not flag.exists()
        assert leftovers(path) == []
        assert nginx.commands == [TEST]

    def test_missing_test_program_is_a_failed_check_not_a_crash(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue")

        result = run_module(
            nginx_color.main,
            args(path, servers=MORE_SERVERS, test_command=["/usr/local/sbin/nginx", "-t"]),
        )

        assert result["failed"] is True
        assert result["rc"] == 127
        assert "cannot run /usr/local/sbin/nginx" in result["msg"]
        assert "(colour blue) was restored" in result["msg"]
        assert path.read_bytes() == before

    def test_a_flip_runs_no_command_so_a_missing_program_does_not_matter(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "blue")

        result = run_module(
            nginx_color.main,
            args(
                path,
                test_command=["/usr/local/sbin/nginx", "-t"],
                reload_command=["/usr/local/sbin/nginx", "-s", "reload"],
            ),
        )

        assert result["failed"] is False
        assert flag.exists()
        assert nginx.commands == []

    def test_failed_restore_says_the_new_file_is_still_in_place(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "blue")
        monkeypatch.setattr(nginx_config, "restore", lambda module, path, previous: "disk full")

        result = run_module(nginx_color.main, args(path, server_options="bogus=1"))

        assert result["failed"] is True
        assert result["changed"] is True
        assert (
            f"putting the previous content of {path} back also failed: {path}: disk full"
            in result["msg"]
        )
        assert "restore it by hand" in result["msg"]
        assert "was restored" not in result["msg"]
        assert nginx.commands == [TEST]

    def test_failed_flag_write_on_a_flip_leaves_everything_and_runs_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")

        def read_only(module: AnsibleModule, path: str, content: bytes) -> None:
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(nginx_config, "write_atomic", read_only)

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"could not write {flag}: [Errno 30] Read-only file system" in result["msg"]
        assert "traffic is where it was" in result["msg"]
        assert result["previous_colour"] == result["active_colour"] == "blue"
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == []

    def test_failed_include_write_leaves_the_previous_file_and_runs_nothing(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")

        def read_only(module: AnsibleModule, path: str, content: bytes) -> None:
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(nginx_config, "write_atomic", read_only)

        result = run_module(nginx_color.main, args(path, colour="blue", servers=MORE_SERVERS))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"could not write {path}: [Errno 30] Read-only file system" in result["msg"]
        assert path.read_bytes() == before
        assert nginx.commands == []

    def test_failed_flag_write_after_the_reload_puts_the_include_back_and_reloads(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        write_atomic = nginx_config.write_atomic

        def flag_read_only(module: AnsibleModule, target: str, content: bytes) -> None:
            if target == str(flag):
                raise OSError(30, "Read-only file system")
            write_atomic(module, target, content)

        monkeypatch.setattr(nginx_config, "write_atomic", flag_read_only)

        result = run_module(nginx_color.main, args(path, servers=MORE_SERVERS))

        assert result["failed"] is True
        assert result["changed"] is False
        assert f"could not write {flag}" in result["msg"]
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.loaded == before.decode()
        assert nginx.serving() == "blue"

    def test_path_under_a_file_cannot_be_read_and_says_so(
        self, run_module, nginx: FakeNginx, tmp_path: Path
    ) -> None:
        (tmp_path / "bluegreen").write_text("a file where the directory should be\n")
        path = tmp_path / "bluegreen" / "sampleapp.upstream.conf"

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert f"could not read {path}: Not a directory" in result["msg"]
        assert nginx.commands == []

    def test_failed_reload_restores_and_reloads_the_previous_include(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve(nginx, "blue")
        nginx.failing_reloads = 1

        result = run_module(nginx_color.main, args(path, servers=MORE_SERVERS))

        assert result["failed"] is True
        assert result["changed"] is False
        assert result["msg"].startswith(
            f"systemctl reload nginx failed after writing {path}: Job for nginx.service failed."
        )
        assert "(colour blue) was restored" in result["msg"]
        assert "nginx was reloaded with it" in result["msg"]
        assert result["cmd"] == RELOAD
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.loaded == before.decode()
        assert nginx.serving() == "blue"

    def test_failed_reload_of_a_legacy_green_file_puts_include_and_flag_back(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        before = serve_legacy(nginx, "green")
        nginx.failing_reloads = 1

        result = run_module(nginx_color.main, args(path, colour="blue"))

        assert result["failed"] is True
        assert result["previous_colour"] == result["active_colour"] == "green"
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.serving() == "green"

    def test_reload_failing_twice_says_nginx_needs_a_look(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        before = serve(nginx, "blue")
        nginx.failing_reloads = 2

        result = run_module(nginx_color.main, args(path, servers=MORE_SERVERS))

        assert result["failed"] is True
        assert "reloading nginx again also failed" in result["msg"]
        assert "systemctl status nginx" in result["msg"]
        assert path.read_bytes() == before


class TestProbes:
    def test_probe_timeout_fails_with_counts_and_the_way_back(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, tmp_path: Path
    ) -> None:
        serve(nginx, "blue")
        # A site that tests another flag file never sees the switch.
        nginx.flag = tmp_path / "elsewhere.green-live"

        result = run_module(nginx_color.main, args(path, probe_timeout=0.2, probe_interval=0.01))

        assert result["failed"] is True
        assert result["changed"] is True
        assert result["reloaded"] is False
        assert result["previous_colour"] == "blue"
        assert result["active_colour"] == "green"
        assert result["probes"] > 1
        assert result["last_probe"] == {
            "status": 200,
            "header": "blue",
            "error": None,
            "version": None,
        }
        assert f"nginx was told to route to green ({path} and its flag file)" in result["msg"]
        assert f"{result['probes']} probes of http://127.0.0.1/" in result["msg"]
        assert "last seen: HTTP 200 with X-Bluegreen-Colour: 'blue'" in result["msg"]
        assert "run again with colour=blue" in result["msg"]
        assert flag.read_bytes() == GREEN_FLAG
        assert nginx.commands == []

    def test_rerun_that_finds_nginx_down_fails_without_changing_anything(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        serve(nginx, "green")
        nginx.running = False

        result = run_module(nginx_color.main, args(path, probe_timeout=0.1, probe_interval=0.01))

        assert result["failed"] is True
        assert result["changed"] is False
        assert "nothing was changed or reloaded" in result["msg"]
        assert "no response ([Errno 111] Connection refused)" in result["msg"]
        assert nginx.commands == []


class TestRead:
    @pytest.mark.parametrize("colour", ["blue", "green"])
    def test_without_colour_returns_the_active_colour_only(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, colour: str
    ) -> None:
        content = serve(nginx, colour)

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["failed"] is False
        assert result["changed"] is False
        assert result["reloaded"] is False
        assert result["active_colour"] == result["previous_colour"] == colour
        assert result["flag_path"] == str(flag)
        assert result["probes"] == 0
        assert path.read_bytes() == content
        assert flag.exists() is (colour == "green")
        assert nginx.commands == []

    def test_reads_the_flag_the_include_records(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, tmp_path: Path
    ) -> None:
        custom = tmp_path / "run" / "sampleapp.live-green"
        path.parent.mkdir(parents=True)
        path.write_text(render(custom))
        custom.parent.mkdir()
        custom.touch()
        flag.unlink(missing_ok=True)

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["active_colour"] == "green"
        assert result["flag_path"] == str(custom)

    def test_without_file_there_is_no_active_colour(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        flag.parent.mkdir(parents=True)
        flag.touch()

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["changed"] is False
        assert result["active_colour"] is None
        assert result["flag_path"] == str(flag)
        assert not path.exists()

    def test_unreadable_file_says_what_to_do(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        path.mkdir(parents=True)

        result = run_module(nginx_color.main, {"name": "sampleapp", "path": str(path)})

        assert result["failed"] is True
        assert f"could not read {path}" in result["msg"]
        assert "become: true" in result["msg"]

    def test_unreadable_flag_says_what_to_do(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "blue")
        flag.mkdir()

        result = run_module(nginx_color.main, args(path))

        assert result["failed"] is True
        assert f"could not read {flag}" in result["msg"]
        assert nginx.commands == []


def test_default_path_is_under_etc_nginx_bluegreen(
    run_module, nginx: FakeNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    monkeypatch.setattr(nginx_color, "read_file", lambda path: read.append(path))

    result = run_module(nginx_color.main, {"name": "sampleapp"})

    assert result["path"] == "/etc/nginx/bluegreen/sampleapp.upstream.conf"
    assert result["flag_path"] == "/etc/nginx/bluegreen/sampleapp.green-live"
    assert read == [result["path"], result["flag_path"]]
    assert result["active_colour"] is None


def test_examples_and_return_are_valid_yaml() -> None:
    examples = yaml.safe_load(nginx_color.EXAMPLES)
    returned = yaml.safe_load(nginx_color.RETURN)

    assert all("nginx_color" in task or "ansible.builtin.debug" in task for task in examples)
    assert {
        "previous_colour",
        "active_colour",
        "path",
        "flag_path",
        "reloaded",
        "switch_ms",
        "probes",
        "last_probe",
    } <= returned.keys()


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


def direct_answers(
    nginx: FakeNginx, answers: dict[str, ProbeResult], asked: list[tuple[str, str]]
) -> Any:
    """probe_once for the precheck: servers asked directly get `answers`, the rest is nginx."""

    def probe(settings: ProbeSettings, timeout: float, version_header: str = "") -> ProbeResult:
        if settings.url.startswith("http://10.0.0."):
            asked.append((settings.url, version_header))
            return answers[settings.url]
        return nginx.probe(settings, timeout)

    return probe


class TestPrecheck:
    def test_switch_to_a_colour_whose_server_is_down_is_refused_and_writes_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        asked: list[tuple[str, str]] = []
        refused = ProbeResult(status=None, header=None, error="Connection refused")
        monkeypatch.setattr(
            nginx_color,
            "probe_once",
            direct_answers(nginx, {"http://10.0.0.5:8002/health": refused}, asked),
        )

        result = run_module(nginx_color.main, args(path, precheck_path="/health"))

        assert result["failed"]
        assert asked == [("http://10.0.0.5:8002/health", "")]
        assert "refusing to switch to green" in result["msg"]
        assert "10.0.0.5:8002/health did not answer (Connection refused)" in result["msg"]
        assert "traffic stays on blue" in result["msg"]
        assert result["changed"] is False
        assert result["reloaded"] is False
        assert result["active_colour"] == "blue"
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.serving() == "blue"
        assert nginx.commands == []

    def test_refused_switch_with_changed_servers_writes_nothing_either(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve_legacy(nginx, "blue")
        down = ProbeResult(status=503, header="green")
        monkeypatch.setattr(
            nginx_color,
            "probe_once",
            direct_answers(
                nginx,
                {"http://10.0.0.5:8002/health": down, "http://10.0.0.6:8002/health": down},
                [],
            ),
        )

        result = run_module(
            nginx_color.main, args(path, servers=MORE_SERVERS, precheck_path="/health")
        )

        assert result["failed"]
        assert result["changed"] is False
        assert result["reloaded"] is False
        assert "10.0.0.6:8002/health answered 503" in result["msg"]
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == []

    def test_switch_to_a_healthy_colour_records_each_server_answer(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "blue")
        healthy = ProbeResult(status=200, header="green")
        monkeypatch.setattr(
            nginx_color,
            "probe_once",
            direct_answers(nginx, {"http://10.0.0.5:8002/health": healthy}, []),
        )

        result = run_module(nginx_color.main, args(path, precheck_path="health"))

        assert not result["failed"], result
        assert result["precheck"] == {
            "10.0.0.5:8002": {"status": 200, "header": "green", "error": None, "version": None}
        }
        assert nginx.serving() == "green"

    def test_switch_to_a_colour_running_a_refused_version_writes_nothing(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        asked: list[tuple[str, str]] = []
        crashing = ProbeResult(status=200, header="green", version="2.0.1+crash")
        monkeypatch.setattr(
            nginx_color,
            "probe_once",
            direct_answers(nginx, {"http://10.0.0.5:8002/health": crashing}, asked),
        )

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
        assert asked == [("http://10.0.0.5:8002/health", "X-Bluegreen-Version")]
        assert "10.0.0.5:8002 runs 2.0.1+crash, marked bad by release r7" in result["msg"]
        assert "Release a verified version to green instead" in result["msg"]
        assert path.read_bytes() == before
        assert not flag.exists()
        assert nginx.commands == []

    def test_a_server_naming_no_version_is_refused_while_versions_are_refused(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = serve(nginx, "blue")
        asked: list[tuple[str, str]] = []
        silent = ProbeResult(status=200, header="green", version=None)
        monkeypatch.setattr(
            nginx_color,
            "probe_once",
            direct_answers(nginx, {"http://10.0.0.5:8002/health": silent}, asked),
        )
        refusing = dict(
            precheck_path="/health",
            precheck_version_header="X-Bluegreen-Version",
            precheck_refuse_versions={"2.0.1+crash": "marked bad by release r7"},
        )

        result = run_module(nginx_color.main, args(path, **refusing))

        assert result["failed"]
        assert "10.0.0.5:8002 names no version in X-Bluegreen-Version" in result["msg"]
        assert "bluegreen_service_version_header to ''" in result["msg"]
        assert path.read_bytes() == before and not flag.exists()
        # Nothing refused: a server that names no version is no reason to stop.
        allowed = run_module(
            nginx_color.main, args(path, **dict(refusing, precheck_refuse_versions={}))
        )
        assert not allowed["failed"], allowed

    def test_no_precheck_when_the_colour_is_live_already(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "green")
        asked: list[tuple[str, str]] = []
        monkeypatch.setattr(nginx_color, "probe_once", direct_answers(nginx, {}, asked))

        result = run_module(nginx_color.main, args(path, precheck_path="/health"))

        assert result["failed"] is False
        assert result["changed"] is False
        assert result["precheck"] == {}
        assert asked == []

    def test_no_precheck_when_only_the_servers_of_the_live_colour_change(
        self, run_module, nginx: FakeNginx, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serve(nginx, "green")
        asked: list[tuple[str, str]] = []
        monkeypatch.setattr(nginx_color, "probe_once", direct_answers(nginx, {}, asked))

        result = run_module(
            nginx_color.main, args(path, servers=MORE_SERVERS, precheck_path="/health")
        )

        assert result["failed"] is False
        assert result["changed"] is True
        assert result["precheck"] == {}
        assert asked == []
        assert nginx.commands == [TEST, RELOAD]


class TestOtherColour:
    def test_other_switches_away_from_the_live_colour(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve(nginx, "green")

        result = run_module(nginx_color.main, args(path, colour="other"))

        assert not result["failed"], result
        assert (result["previous_colour"], result["active_colour"]) == ("green", "blue")
        assert not flag.exists()
        assert nginx.serving() == "blue"
        assert nginx.commands == []

    def test_other_from_a_legacy_file_switches_away_from_its_colour(
        self, run_module, nginx: FakeNginx, path: Path, flag: Path
    ) -> None:
        serve_legacy(nginx, "blue")

        result = run_module(nginx_color.main, args(path, colour="other"))

        assert (result["previous_colour"], result["active_colour"]) == ("blue", "green")
        assert flag.read_bytes() == GREEN_FLAG
        assert nginx.serving() == "green"

    def test_other_without_a_live_colour_is_refused(
        self, run_module, nginx: FakeNginx, path: Path
    ) -> None:
        result = run_module(nginx_color.main, args(path, colour="other"))

        assert result["failed"]
        assert "needs a live colour to switch away from" in result["msg"]
        assert not path.exists()
