"""The pure decisions behind nginx_color: validation, rendering, parsing, probe verdicts."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.nginx_color import (
    Marker,
    NginxColorError,
    ProbeOutcome,
    ProbeResult,
    ProbeSettings,
    build_request,
    check_failed_message,
    default_flag_path,
    default_path,
    flag_content,
    flag_diff,
    flag_for,
    flag_path_for,
    live_colour,
    next_streak,
    parse_marker,
    probe_failed_message,
    read_marker,
    reload_failed_message,
    render_upstreams,
    servers_by_colour,
    servers_for,
    switch_changes,
    validate_flag_path,
    validate_name,
    validate_server,
    validate_server_options,
    wait_for_colour,
)
from ansible.module_utils.nginx_config import FileChange

SERVERS = {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002", "app-2.example.com:8002"]}
FLAG = "/etc/nginx/bluegreen/sampleapp.green-live"
LEGACY_GREEN = (
    "# managed by bluegreen nginx_color: name=sampleapp colour=green\n"
    "# Written by bluegreen nginx_color; edits are replaced on the next switch.\n"
    "upstream sampleapp_live {\n"
    "    server 10.0.0.5:8002 max_fails=0;\n"
    "    keepalive 32;\n"
    "}\n"
)


def params(**overrides: Any) -> dict[str, Any]:
    """Module parameters as AnsibleModule hands them over, defaults filled in."""
    base: dict[str, Any] = {
        "name": "sampleapp",
        "colour": "green",
        "servers": SERVERS,
        "path": None,
        "flag_path": None,
        "keepalive": 32,
        "server_options": "max_fails=0",
        "test_command": ["nginx", "-t"],
        "reload_command": ["systemctl", "reload", "nginx"],
        "probe_url": "http://127.0.0.1/",
        "probe_host_header": None,
        "probe_header": "X-Bluegreen-Colour",
        "probe_successes": 5,
        "probe_timeout": 30.0,
        "probe_interval": 0.1,
    }
    base.update(overrides)
    return base


def settings(**overrides: Any) -> ProbeSettings:
    base: dict[str, Any] = {
        "url": "http://127.0.0.1/",
        "host_header": None,
        "header": "X-Bluegreen-Colour",
        "successes": 3,
        "timeout": 1.0,
        "interval": 0.1,
    }
    base.update(overrides)
    return ProbeSettings(**base)


def parse_marker_for(colour: str | None, flag: str | None) -> Marker | None:
    """The marker of a legacy file for `colour`, or of a current file recording `flag`."""
    record = f"colour={colour}" if colour else f"flag={flag}"
    return parse_marker(f"# managed by bluegreen nginx_color: name=sampleapp {record}\n")


class TestRender:
    def test_renders_marker_and_both_upstreams_with_servers_and_keepalive(self) -> None:
        content = render_upstreams(
            "sampleapp",
            {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002", "[2001:db8::5]:8002"]},
            32,
            "max_fails=0",
            FLAG,
        )
        assert content == (
            f"# managed by bluegreen nginx_color: name=sampleapp flag={FLAG}\n"
            "# Written by bluegreen nginx_color; edits are replaced on the next switch.\n"
            f"# Both colours stay defined. The site routes to sampleapp_green while {FLAG}\n"
            "# exists and to sampleapp_blue otherwise; creating or removing it switches, "
            "no reload.\n"
            "upstream sampleapp_blue {\n"
            "    server 10.0.0.5:8001 max_fails=0;\n"
            "    keepalive 32;\n"
            "}\n"
            "upstream sampleapp_green {\n"
            "    server 10.0.0.5:8002 max_fails=0;\n"
            "    server [2001:db8::5]:8002 max_fails=0;\n"
            "    keepalive 32;\n"
            "}\n"
        )

    @pytest.mark.parametrize("servers", [{"green": ["h:2"]}, {"blue": [], "green": ["h:2"]}])
    def test_colour_without_servers_gets_one_down_server(self, servers: dict[str, Any]) -> None:
        content = render_upstreams("app", servers, 0, "max_fails=0", "/f")
        assert (
            "upstream app_blue {\n"
            "    # blue has no servers yet: its requests get 502 at once.\n"
            "    server 127.0.0.1:9 down;\n"
            "}\n"
        ) in content
        assert "upstream app_green {\n    server h:2 max_fails=0;\n}\n" in content
        assert "127.0.0.1:9 down max_fails=0" not in content

    def test_keepalive_zero_and_no_server_options_leave_those_out(self) -> None:
        content = render_upstreams("app", {"blue": ["h:1"], "green": ["h:2"]}, 0, "", "/f")
        assert "keepalive" not in content
        assert "    server h:1;\n" in content
        assert "    server h:2;\n" in content

    def test_keepalive_is_set_in_each_upstream(self) -> None:
        content = render_upstreams("app", {"blue": ["h:1"]}, 8, "", "/f")
        assert content.count("    keepalive 8;\n") == 2

    def test_rendering_is_deterministic(self) -> None:
        servers = {"blue": ["h:1", "h:2"], "green": ["h:3"]}
        first = render_upstreams("app", servers, 8, "weight=2", "/f")
        assert first == render_upstreams(
            "app", dict(reversed(servers.items())), 8, "weight=2", "/f"
        )

    def test_rendering_depends_on_the_flag_but_not_on_the_live_colour(self) -> None:
        servers = {"blue": ["h:1"], "green": ["h:2"]}
        assert render_upstreams("app", servers, 8, "", "/a") != render_upstreams(
            "app", servers, 8, "", "/b"
        )


class TestParse:
    def test_rendered_file_parses_back_to_its_flag(self) -> None:
        content = render_upstreams("sampleapp", {"blue": ["h:1"]}, 32, "", FLAG)
        marker = read_marker(content, "sampleapp", "/x.conf")
        assert marker is not None
        assert (marker.name, marker.colour, marker.flag) == ("sampleapp", None, FLAG)

    def test_legacy_colour_marker_is_still_read(self) -> None:
        marker = read_marker(LEGACY_GREEN, "sampleapp", "/x.conf")
        assert marker is not None
        assert (marker.name, marker.colour, marker.flag) == ("sampleapp", "green", None)

    def test_missing_file_has_no_marker_and_no_live_colour(self) -> None:
        assert read_marker(None, "sampleapp", "/x.conf") is None
        assert live_colour(None, True) is None
        assert live_colour(None, False) is None

    @pytest.mark.parametrize(
        ("colour", "flag_exists", "expected"),
        [
            (None, True, "green"),
            (None, False, "blue"),
            ("green", False, "green"),
            ("blue", True, "blue"),
            ("green", True, "green"),
            ("blue", False, "blue"),
        ],
    )
    def test_flag_decides_unless_the_file_is_legacy(
        self, colour: str | None, flag_exists: bool, expected: str
    ) -> None:
        flag = None if colour else FLAG
        assert live_colour(parse_marker_for(colour, flag), flag_exists) == expected

    @pytest.mark.parametrize(
        "content",
        [
            "",
            "upstream sampleapp_live { server h:1; }\n",
            "# managed by bluegreen nginx_color: name=sampleapp colour=red\n",
            "# managed by bluegreen nginx_color: name=sampleapp\n",
            "# managed by bluegreen nginx_color: name=sampleapp flag=relative/x.green-live\n",
            "# managed by bluegreen nginx_color: name=sampleapp flag=\n",
            "\n# managed by bluegreen nginx_color: name=sampleapp colour=blue\n",
            f"\n# managed by bluegreen nginx_color: name=sampleapp flag={FLAG}\n",
        ],
    )
    def test_file_without_valid_marker_is_refused_with_advice(self, content: str) -> None:
        with pytest.raises(NginxColorError) as error:
            read_marker(content, "sampleapp", "/etc/nginx/bluegreen/sampleapp.upstream.conf")
        message = str(error.value)
        assert "/etc/nginx/bluegreen/sampleapp.upstream.conf" in message
        assert "not managed by bluegreen" in message
        assert "name=sampleapp flag=<flag file>" in message
        assert "Move the file aside" in message

    @pytest.mark.parametrize(
        "content",
        [
            render_upstreams("otherapp", {"blue": ["h:1"]}, 32, "", FLAG),
            LEGACY_GREEN.replace("name=sampleapp", "name=otherapp"),
        ],
    )
    def test_file_managed_for_another_name_is_refused(self, content: str) -> None:
        with pytest.raises(NginxColorError, match="name=otherapp, not name=sampleapp"):
            read_marker(content, "sampleapp", "/x.conf")

    def test_marker_tolerates_crlf_and_trailing_spaces(self) -> None:
        marker = parse_marker("# managed by bluegreen nginx_color: name=a colour=blue  \r\nx")
        assert marker is not None
        assert (marker.name, marker.colour) == ("a", "blue")
        marker = parse_marker(f"# managed by bluegreen nginx_color: name=a flag={FLAG} \r\nx")
        assert marker is not None
        assert (marker.name, marker.flag) == ("a", FLAG)


class TestFlagPath:
    @pytest.mark.parametrize(
        "flag",
        [
            FLAG,
            "/run/bluegreen/app_1.green-live",
            "/x",
            "/etc/nginx/conf.d/app.green-live.off",
            "/a..b/c",
        ],
    )
    def test_accepts_absolute_plain_paths(self, flag: str) -> None:
        assert validate_flag_path(flag) == flag

    @pytest.mark.parametrize(
        "flag",
        [
            "sampleapp.green-live",
            "etc/nginx/bluegreen/sampleapp.green-live",
            "./sampleapp.green-live",
            "/etc/nginx/bluegreen/sampleapp.conf",
            "/etc/nginx/conf.d/live.conf",
            "/etc/nginx/bluegreen/green live",
            "/etc/nginx/bluegreen/live;",
            "/etc/nginx/bluegreen/live; include /etc/passwd",
            "/etc/nginx/bluegreen/{live}",
            "/etc/nginx/bluegreen/$live",
            "/etc/nginx/../passwd",
            "/etc/nginx/bluegreen/..",
            "/..",
            "",
            None,
            5,
        ],
    )
    def test_refuses_anything_nginx_could_misread(self, flag: object) -> None:
        with pytest.raises(NginxColorError) as error:
            validate_flag_path(flag)
        assert str(error.value).startswith(f"flag_path {flag!r} is not valid")
        assert "does not end in .conf" in str(error.value)

    def test_default_flag_sits_beside_the_include(self) -> None:
        assert default_flag_path(default_path("sampleapp"), "sampleapp") == FLAG
        assert default_flag_path("/srv/nginx/a.conf", "app") == "/srv/nginx/app.green-live"

    def test_requested_flag_wins_over_the_recorded_one(self) -> None:
        marker = parse_marker_for(None, "/recorded/flag")
        assert flag_path_for("/asked/flag", marker, "/x/a.conf", "a") == "/asked/flag"

    def test_recorded_flag_wins_over_the_default(self) -> None:
        marker = parse_marker_for(None, "/recorded/flag")
        assert flag_path_for(None, marker, "/x/a.conf", "a") == "/recorded/flag"
        assert flag_path_for("", marker, "/x/a.conf", "a") == "/recorded/flag"

    def test_default_flag_without_a_recorded_one(self) -> None:
        assert flag_path_for(None, None, "/x/a.conf", "a") == "/x/a.green-live"
        legacy = parse_marker_for("green", None)
        assert flag_path_for(None, legacy, "/x/a.conf", "a") == "/x/a.green-live"

    def test_requested_flag_is_validated(self) -> None:
        with pytest.raises(NginxColorError, match="flag_path 'rel/flag' is not valid"):
            flag_path_for("rel/flag", None, "/x/a.conf", "a")


GREEN_FLAG = flag_content("green", "sampleapp")


class TestFlagContent:
    def test_green_is_a_flag_naming_the_service_and_blue_is_none(self) -> None:
        assert GREEN_FLAG == (
            b"green is live for sampleapp: nginx routes to sampleapp_green while this file exists\n"
        )
        assert flag_content("blue", "sampleapp") is None
        assert flag_content(None, "sampleapp") is None

    @pytest.mark.parametrize(
        ("colour", "current", "expected"),
        [
            ("green", None, GREEN_FLAG),
            ("green", GREEN_FLAG, GREEN_FLAG),
            # A flag made by hand (touch) is green already: it is kept as it is.
            ("green", b"", b""),
            ("green", b"by hand\n", b"by hand\n"),
            ("blue", None, None),
            ("blue", b"", None),
            ("blue", GREEN_FLAG, None),
        ],
    )
    def test_flag_for_keeps_a_flag_that_says_so_already(
        self, colour: str, current: bytes | None, expected: bytes | None
    ) -> None:
        assert flag_for(colour, current, "sampleapp") == expected


INCLUDE = "/x/sampleapp.upstream.conf"


class TestSwitchChanges:
    def test_same_include_changes_only_the_flag(self) -> None:
        changes = switch_changes(
            INCLUDE, b"same", b"same", FLAG, None, "blue", "green", "sampleapp"
        )
        assert changes == [FileChange(FLAG, None, GREEN_FLAG)]

    def test_same_include_flip_back_to_blue_removes_the_flag(self) -> None:
        changes = switch_changes(INCLUDE, b"same", b"same", FLAG, b"", "green", "blue", "sampleapp")
        assert changes == [FileChange(FLAG, b"", None)]
        assert not changes[0].loaded

    def test_same_include_same_colour_changes_nothing(self) -> None:
        changes = switch_changes(
            INCLUDE, b"same", b"same", FLAG, b"", "green", "green", "sampleapp"
        )
        assert [change for change in changes if change.before != change.after] == []

    def test_new_include_holds_the_previous_colour_while_nginx_reloads(self) -> None:
        changes = switch_changes(INCLUDE, b"old", b"new", FLAG, None, "blue", "green", "sampleapp")
        assert changes == [
            FileChange(FLAG, None, None),
            FileChange(INCLUDE, b"old", b"new", loaded=True),
            FileChange(FLAG, None, GREEN_FLAG),
        ]

    def test_new_include_from_green_to_blue_removes_the_flag_after_the_reload(self) -> None:
        changes = switch_changes(
            INCLUDE, b"old", b"new", FLAG, GREEN_FLAG, "green", "blue", "sampleapp"
        )
        assert changes == [
            FileChange(FLAG, GREEN_FLAG, GREEN_FLAG),
            FileChange(INCLUDE, b"old", b"new", loaded=True),
            FileChange(FLAG, GREEN_FLAG, None),
        ]

    def test_legacy_green_file_gets_the_flag_before_the_reload(self) -> None:
        # A `colour=green` file serves green without a flag: the flag must exist before
        # nginx loads the new include, or the reload itself would move traffic to blue.
        changes = switch_changes(
            INCLUDE, b"legacy", b"new", FLAG, None, "green", "blue", "sampleapp"
        )
        assert changes == [
            FileChange(FLAG, None, GREEN_FLAG),
            FileChange(INCLUDE, b"legacy", b"new", loaded=True),
            FileChange(FLAG, GREEN_FLAG, None),
        ]

    def test_legacy_blue_file_with_a_stale_flag_loses_it_before_the_reload(self) -> None:
        changes = switch_changes(
            INCLUDE, b"legacy", b"new", FLAG, b"stale", "blue", "blue", "sampleapp"
        )
        assert changes == [
            FileChange(FLAG, b"stale", None),
            FileChange(INCLUDE, b"legacy", b"new", loaded=True),
            FileChange(FLAG, None, None),
        ]

    @pytest.mark.parametrize(("colour", "flag"), [("blue", None), ("green", GREEN_FLAG)])
    def test_first_install_sets_the_flag_before_the_first_load(
        self, colour: str, flag: bytes | None
    ) -> None:
        changes = switch_changes(INCLUDE, None, b"new", FLAG, None, None, colour, "sampleapp")
        assert changes == [
            FileChange(FLAG, None, flag),
            FileChange(INCLUDE, None, b"new", loaded=True),
            FileChange(FLAG, flag, flag),
        ]

    def test_only_the_include_is_loaded(self) -> None:
        changes = switch_changes(INCLUDE, b"old", b"new", FLAG, None, "blue", "green", "sampleapp")
        assert [change.path for change in changes if change.loaded] == [INCLUDE]


class TestFlagDiff:
    def test_diff_shows_which_colour_serves_before_and_after(self) -> None:
        assert flag_diff(FLAG, None, b"") == {
            "before": "absent: blue serves\n",
            "after": "present: green serves\n",
            "before_header": FLAG,
            "after_header": FLAG,
        }
        assert flag_diff(FLAG, GREEN_FLAG, None)["after"] == "absent: blue serves\n"
        assert flag_diff(FLAG, GREEN_FLAG, None)["before"] == "present: green serves\n"


class TestValidation:
    @pytest.mark.parametrize(
        "server",
        ["10.0.0.5:8001", "localhost:80", "app-green.example.com:65535", "[::1]:8002"],
    )
    def test_accepts_host_port(self, server: str) -> None:
        assert validate_server(server) == server

    @pytest.mark.parametrize(
        "server",
        [
            "10.0.0.5",
            "10.0.0.5:",
            ":8001",
            "10.0.0.5:0",
            "10.0.0.5:65536",
            "10.0.0.5:80a",
            "300.1.1.1:80",
            "::1:8002",
            "[nope]:80",
            "host name:80",
            "-bad.example.com:80",
            "h:80; include /etc/passwd",
            8001,
            None,
        ],
    )
    def test_rejects_anything_else_with_an_example(self, server: object) -> None:
        with pytest.raises(NginxColorError, match="write it as host:port"):
            validate_server(server)

    def test_name_error_names_both_upstreams(self) -> None:
        with pytest.raises(NginxColorError, match="'<name>_blue' and '<name>_green'"):
            validate_name("Bad")

    def test_servers_by_colour_names_every_colour(self) -> None:
        assert servers_by_colour({"green": ["h:2"]}, "green") == {"blue": (), "green": ("h:2",)}
        assert servers_by_colour(SERVERS, "blue") == {
            "blue": ("10.0.0.5:8001",),
            "green": ("10.0.0.5:8002", "app-2.example.com:8002"),
        }

    def test_servers_for_returns_the_requested_colour(self) -> None:
        assert servers_for(SERVERS, "green") == ("10.0.0.5:8002", "app-2.example.com:8002")

    def test_servers_for_checks_the_other_colour_too(self) -> None:
        with pytest.raises(NginxColorError, match="'bad'"):
            servers_for({"blue": ["bad"], "green": ["h:1"]}, "green")

    @pytest.mark.parametrize(
        ("servers", "expected"),
        [
            (None, "servers is required to switch to green"),
            ({}, "servers is required to switch to green"),
            ({"blue": ["h:1"]}, "servers.green is empty or missing"),
            ({"blue": ["h:1"], "green": []}, "servers.green is empty or missing"),
            ({"green": ["h:1"], "red": ["h:2"]}, "its keys must be colours"),
            ({"green": "h:1"}, "must be a list of host:port strings"),
        ],
    )
    def test_servers_for_explains_what_is_missing(self, servers: Any, expected: str) -> None:
        with pytest.raises(NginxColorError, match=expected):
            servers_for(servers, "green")

    @pytest.mark.parametrize("options", ["max_fails=0; include /x", "a}", "a # b", "a\nb", "'x'"])
    def test_server_options_cannot_inject_directives(self, options: str) -> None:
        with pytest.raises(NginxColorError, match="give only nginx server parameters"):
            validate_server_options(options)

    def test_build_request_fills_the_default_path(self) -> None:
        request = build_request(params())
        assert default_path("sampleapp") == "/etc/nginx/bluegreen/sampleapp.upstream.conf"
        assert request.path == default_path("sampleapp")
        assert request.servers == ("10.0.0.5:8002", "app-2.example.com:8002")
        assert request.servers_by_colour == {
            "blue": ("10.0.0.5:8001",),
            "green": ("10.0.0.5:8002", "app-2.example.com:8002"),
        }
        assert request.flag_path is None
        assert request.probe is not None
        assert request.probe.successes == 5

    def test_build_request_keeps_a_valid_flag_path(self) -> None:
        assert build_request(params(flag_path="/run/app.green-live")).flag_path == (
            "/run/app.green-live"
        )

    def test_build_request_without_colour_needs_no_servers(self) -> None:
        request = build_request(params(colour=None, servers=None))
        assert request.colour is None
        assert request.servers == ()
        assert request.servers_by_colour == {}

    def test_empty_probe_url_switches_probing_off(self) -> None:
        assert build_request(params(probe_url="")).probe is None

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"name": "Sample-App"}, "name 'Sample-App' is not valid"),
            ({"name": ""}, "name '' is not valid"),
            ({"colour": "red"}, "colour 'red' is not valid"),
            ({"keepalive": -1}, "keepalive -1 is not valid"),
            ({"test_command": []}, "test_command must be a non-empty list"),
            ({"reload_command": ["systemctl", ""]}, "reload_command must be a non-empty list"),
            ({"probe_url": "127.0.0.1/"}, "probe_url '127.0.0.1/' is not valid"),
            ({"probe_successes": 0}, "probe_successes must be 1 or more"),
            ({"probe_timeout": 0}, "probe_timeout must be more than 0"),
            ({"probe_interval": -0.5}, "probe_interval must be 0 seconds or more"),
            ({"probe_header": ""}, "probe_header must name the response header"),
            ({"flag_path": "app.green-live"}, "flag_path 'app.green-live' is not valid"),
            ({"flag_path": "/etc/nginx/conf.d/app.conf"}, "does not end in .conf"),
        ],
    )
    def test_build_request_rejects_bad_options(
        self, overrides: dict[str, Any], expected: str
    ) -> None:
        with pytest.raises(NginxColorError, match=expected):
            build_request(params(**overrides))


class FakeClock:
    """A clock that moves only when the loop sleeps or a probe takes time."""

    def __init__(self, probe_cost: float = 0.0) -> None:
        self.now = 100.0
        self.probe_cost = probe_cost
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted_probe(clock: FakeClock, headers: list[str | None]) -> Any:
    """A probe that answers with `headers` in turn, then repeats the last one."""
    answers = iter(headers)
    last: list[str | None] = [None]

    def probe(timeout: float) -> ProbeResult:
        assert 0 < timeout <= 2.0
        clock.now += clock.probe_cost
        last[0] = next(answers, last[0])
        if last[0] == "refused":
            return ProbeResult(status=None, header=None, error="Connection refused")
        return ProbeResult(status=200, header=last[0])

    return probe


class TestProbeVerdict:
    def test_streak_counts_matches_and_restarts_on_anything_else(self) -> None:
        green = ProbeResult(200, "green")
        assert next_streak(2, green, "green") == 3
        assert next_streak(2, ProbeResult(200, " green "), "green") == 3
        assert next_streak(2, ProbeResult(200, "blue"), "green") == 0
        assert next_streak(2, ProbeResult(200, None), "green") == 0
        assert next_streak(2, ProbeResult(None, None, "refused"), "green") == 0
        assert next_streak(0, ProbeResult(503, "green"), "green") == 1

    def test_confirms_after_consecutive_matches_despite_old_workers(self) -> None:
        clock = FakeClock()
        probe = scripted_probe(clock, ["blue", "green", "blue", "green", "green", "green"])
        outcome = wait_for_colour(probe, "green", settings(), clock, clock.sleep)
        assert outcome == ProbeOutcome(True, 6, 3, ProbeResult(200, "green"))
        assert clock.sleeps == [0.1] * 5

    def test_connection_errors_reset_the_count(self) -> None:
        clock = FakeClock()
        probe = scripted_probe(clock, ["green", "green", "refused", "green", "green", "green"])
        outcome = wait_for_colour(probe, "green", settings(), clock, clock.sleep)
        assert outcome.confirmed
        assert outcome.probes == 6

    def test_gives_up_at_the_timeout_with_the_last_answer(self) -> None:
        clock = FakeClock()
        probe = scripted_probe(clock, ["blue"])
        outcome = wait_for_colour(
            probe, "green", settings(timeout=1.0, interval=0.25), clock, clock.sleep
        )
        assert not outcome.confirmed
        assert outcome.probes == 5
        assert outcome.streak == 0
        assert outcome.last == ProbeResult(200, "blue")
        assert clock.now == pytest.approx(101.0)

    def test_probes_at_least_once_even_when_a_request_outlasts_the_timeout(self) -> None:
        clock = FakeClock(probe_cost=5.0)
        probe = scripted_probe(clock, ["green"])
        outcome = wait_for_colour(
            probe, "green", settings(successes=1, timeout=1.0), clock, clock.sleep
        )
        assert outcome.confirmed
        assert outcome.probes == 1


class TestMessages:
    def test_failed_check_names_the_restored_colour_and_stderr(self) -> None:
        message = check_failed_message(
            command=("nginx", "-t"),
            path="/p.conf",
            stderr="emerg: bad\n",
            colour="green",
            previous_colour="blue",
        )
        assert message.startswith("nginx -t failed after writing /p.conf: emerg: bad;")
        assert "the previous upstream (colour blue) was restored and is still serving" in message

    def test_failed_check_without_previous_file_says_it_was_removed(self) -> None:
        message = check_failed_message(
            command=("nginx", "-t"), path="/p.conf", stderr="", colour="green", previous_colour=None
        )
        assert "/p.conf was removed again, so nginx is as it was before" in message
        assert "no error output" in message

    def test_failed_restore_says_the_new_file_is_still_there(self) -> None:
        message = check_failed_message(
            command=("nginx", "-t"),
            path="/p.conf",
            stderr="emerg",
            colour="green",
            previous_colour="blue",
            restore_error="Read-only file system",
        )
        assert "putting the previous content of /p.conf back also failed" in message
        assert "/p.conf still routes to green: restore it by hand" in message
        assert "was restored" not in message

    def test_failed_reload_says_whether_the_second_reload_worked(self) -> None:
        failure = {
            "command": ("systemctl", "reload", "nginx"),
            "path": "/p.conf",
            "stderr": "denied",
            "colour": "green",
            "previous_colour": "blue",
        }
        recovered = reload_failed_message(**failure)
        assert recovered.startswith("systemctl reload nginx failed after writing /p.conf: denied;")
        assert "nginx was reloaded with it, so traffic is where it was before" in recovered
        stuck = reload_failed_message(**failure, second_reload_stderr="still denied")
        assert "reloading nginx again also failed: still denied" in stuck
        assert "systemctl status nginx" in stuck

    def test_probe_failure_after_a_switch_points_back_to_the_previous_colour(self) -> None:
        outcome = ProbeOutcome(False, 12, 1, ProbeResult(200, "blue"))
        message = probe_failed_message(
            path="/p.conf",
            colour="green",
            previous_colour="blue",
            switched=True,
            settings=settings(timeout=3.0),
            outcome=outcome,
        )
        assert "nginx was told to route to green (/p.conf and its flag file)" in message
        assert "12 probes of http://127.0.0.1/ in 3s" in message
        assert "last seen: HTTP 200 with X-Bluegreen-Colour: 'blue'" in message
        assert "run again with colour=blue" in message

    def test_probe_failure_without_a_switch_says_nothing_was_changed(self) -> None:
        outcome = ProbeOutcome(False, 2, 0, ProbeResult(None, None, "Connection refused"))
        message = probe_failed_message(
            path="/p.conf",
            colour="green",
            previous_colour="green",
            switched=False,
            settings=settings(),
            outcome=outcome,
        )
        assert "nothing was changed or reloaded" in message
        assert "no response (Connection refused)" in message
