"""The pure decisions behind nginx_color: validation, rendering, parsing, probe verdicts."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.nginx_color import (
    NginxColorError,
    ProbeOutcome,
    ProbeResult,
    ProbeSettings,
    active_colour,
    build_request,
    check_failed_message,
    default_path,
    next_streak,
    parse_marker,
    probe_failed_message,
    reload_failed_message,
    render_upstream,
    servers_for,
    validate_server,
    validate_server_options,
    wait_for_colour,
)

SERVERS = {"blue": ["10.0.0.5:8001"], "green": ["10.0.0.5:8002", "app-2.example.com:8002"]}


def params(**overrides: Any) -> dict[str, Any]:
    """Module parameters as AnsibleModule hands them over, defaults filled in."""
    base: dict[str, Any] = {
        "name": "sampleapp",
        "colour": "green",
        "servers": SERVERS,
        "path": None,
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


class TestRender:
    def test_renders_marker_upstream_servers_and_keepalive(self) -> None:
        content = render_upstream(
            "sampleapp", "green", ["10.0.0.5:8002", "[2001:db8::5]:8002"], 32, "max_fails=0"
        )
        assert content == (
            "# managed by bluegreen nginx_color: name=sampleapp colour=green\n"
            "# Written by bluegreen nginx_color; edits are replaced on the next switch.\n"
            "upstream sampleapp_live {\n"
            "    server 10.0.0.5:8002 max_fails=0;\n"
            "    server [2001:db8::5]:8002 max_fails=0;\n"
            "    keepalive 32;\n"
            "}\n"
        )

    def test_keepalive_zero_and_no_server_options_leave_those_out(self) -> None:
        content = render_upstream("app", "blue", ["h:1"], 0, "")
        assert "keepalive" not in content
        assert "    server h:1;\n" in content

    def test_rendering_is_deterministic(self) -> None:
        first = render_upstream("app", "blue", ["h:1", "h:2"], 8, "weight=2")
        assert first == render_upstream("app", "blue", ["h:1", "h:2"], 8, "weight=2")


class TestParse:
    def test_rendered_file_parses_back_to_its_colour(self) -> None:
        for colour in ("blue", "green"):
            content = render_upstream("sampleapp", colour, ["h:1"], 32, "")
            assert active_colour(content, "sampleapp", "/x.conf") == colour

    def test_missing_file_has_no_active_colour(self) -> None:
        assert active_colour(None, "sampleapp", "/x.conf") is None

    @pytest.mark.parametrize(
        "content",
        [
            "",
            "upstream sampleapp_live { server h:1; }\n",
            "# managed by bluegreen nginx_color: name=sampleapp colour=red\n",
            "\n# managed by bluegreen nginx_color: name=sampleapp colour=blue\n",
        ],
    )
    def test_file_without_valid_marker_is_refused_with_advice(self, content: str) -> None:
        with pytest.raises(NginxColorError) as error:
            active_colour(content, "sampleapp", "/etc/nginx/bluegreen/sampleapp.upstream.conf")
        message = str(error.value)
        assert "/etc/nginx/bluegreen/sampleapp.upstream.conf" in message
        assert "not managed by bluegreen" in message
        assert "Move the file aside" in message

    def test_file_managed_for_another_name_is_refused(self) -> None:
        content = render_upstream("otherapp", "blue", ["h:1"], 32, "")
        with pytest.raises(NginxColorError, match="name=otherapp, not name=sampleapp"):
            active_colour(content, "sampleapp", "/x.conf")

    def test_marker_tolerates_crlf_and_trailing_spaces(self) -> None:
        marker = parse_marker("# managed by bluegreen nginx_color: name=a colour=blue  \r\nx")
        assert marker is not None
        assert (marker.name, marker.colour) == ("a", "blue")


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
        assert request.probe is not None
        assert request.probe.successes == 5

    def test_build_request_without_colour_needs_no_servers(self) -> None:
        request = build_request(params(colour=None, servers=None))
        assert request.colour is None
        assert request.servers == ()

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
        assert "nginx was reloaded with /p.conf routing to green" in message
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
