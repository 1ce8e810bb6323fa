"""nginx_requests: golden signals per colour from nginx's JSON request log.

Parsing, counting, route capping and where to read after a mark are pure functions,
tested on values. The module runs in-process on real files under tmp_path: marked,
appended to, rotated by rename, truncated in place and removed, as logrotate and nginx
would, and each window must count every line once and say when it could not.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import nginx_requests
import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.nginx_requests import (
    FileState,
    Mark,
    NginxRequestsError,
    ReadPlan,
    Request,
    RouteStats,
    Tally,
    cap_routes,
    complete_lines,
    histogram,
    latency_ms,
    parse_line,
    parse_mark,
    plan_read,
    rotated_candidates,
    upstream_ms,
    validate_max_routes,
    window,
)

LOG = "/var/log/nginx/app.requests.log"


def line(
    colour: Any = "green",
    status: Any = 200,
    request_time: Any = 0.012,
    upstream: Any = "10.0.0.5:8002",
    uri: Any = "/notes",
    sent: Any = 123,
    **changes: Any,
) -> str:
    """One log line as nginx writes it (with its newline); a change of None drops the field."""
    entry = {
        "time": 1733500000.123,
        "colour": colour,
        "status": status,
        "request_time": request_time,
        "upstream_time": "0.011",
        "upstream": upstream,
        "method": "GET",
        "uri": uri,
        "bytes": sent,
    } | changes
    return json.dumps({k: v for k, v in entry.items() if v is not None}, separators=(",", ":")) + (
        "\n"
    )


def tally_of(*lines: str, exclude: tuple[str, ...] = (), max_routes: int = 50) -> dict[str, Any]:
    tally = Tally(exclude)
    for text in lines:
        tally.add_line(text.rstrip("\n"))
    return tally.as_dict(max_routes)


# --- parsing ----------------------------------------------------------------------------


def test_a_line_as_nginx_writes_it_is_a_request_of_its_colour() -> None:
    assert parse_line(line().rstrip("\n")) == Request(
        colour="green",
        routed=True,
        status=200,
        latency_ms=12,
        uri="/notes",
        bytes=123,
        upstream_ms=11,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Numbers as strings.
        (line(status="503", request_time="0.250", sent="0"), ("green", True, 503, 250, "0")),
        (line(status=" 200 ", request_time=" 1.5 "), ("green", True, 200, 1500, "123")),
        (line(status=200.0, request_time=2), ("green", True, 200, 2000, "123")),
        (line(status=499), ("green", True, 499, 12, "123")),
        # A retry names two upstreams: still routed, to the colour nginx logged.
        (line(upstream="10.0.0.5:8002, 10.0.0.6:8002"), ("green", True, 200, 12, "123")),
        # The upstream group's name when no server was up: routed, and counted.
        (line(upstream="app_green", status=502), ("green", True, 502, 12, "123")),
        (line(colour=" blue "), ("blue", True, 200, 12, "123")),
        # nginx answered itself: unrouted, whatever colour it logged.
        (line(upstream="", status=503), ("", False, 503, 12, "123")),
        (line(upstream="-", colour=None), ("", False, 200, 12, "123")),
        (
            line(upstream_time="0.010, 0.002", time=None, method=None),
            ("green", True, 200, 12, "123"),
        ),
        (line(upstream_time="-"), ("green", True, 200, 12, "123")),
    ],
)
def test_odd_but_readable_values_are_tolerated(text: str, expected: tuple[Any, ...]) -> None:
    colour, routed, status, ms, sent = expected
    request = parse_line(text.rstrip("\n"))

    assert request is not None
    assert (request.colour, request.routed, request.status, request.latency_ms) == (
        colour,
        routed,
        status,
        ms,
    )
    assert request.bytes == int(sent)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"status":200,',
        "[1, 2]",
        '"a string"',
        "null",
        line(status="abc"),
        line(status=True),
        line(status=200.5),
        line(status=1000),
        line(status=-1),
        line(status=None),
        line(request_time="-"),
        line(request_time=""),
        line(request_time=-0.001),
        line(request_time=None),
        line(request_time=[0.1]),
        line(sent=-1),
        line(sent="12.5"),
        line(sent=None),
        line(uri=None),
        line(uri=5),
        line(upstream=None),
        line(upstream=8002),
        line(colour=None),
        line(colour=""),
        line(colour="  "),
        line(colour=1),
        # json reads these literals, but they are no time at all.
        line(request_time=0.5).replace("0.5", "NaN"),
        line(request_time=0.5).replace("0.5", "Infinity"),
    ],
)
def test_lines_that_are_no_request_are_none(text: str) -> None:
    assert parse_line(text.rstrip("\n")) is None


def test_a_line_given_as_bytes_is_read_too() -> None:
    assert parse_line(line().encode()) == parse_line(line())
    assert parse_line(b"\xff\xfe") is None


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(0.0, 0), (0.0004, 0), (0.0005, 1), (0.001, 1), (0.012, 12), (0.0125, 13), (2.345, 2345)],
)
def test_latency_is_rounded_to_the_nearest_millisecond(seconds: float, ms: int) -> None:
    assert latency_ms(seconds) == ms


def test_every_millisecond_nginx_can_log_lands_in_its_own_bucket() -> None:
    # nginx logs $request_time with 3 decimals; float error must never move a bucket.
    assert all(latency_ms(float(f"{ms / 1000:.3f}")) == ms for ms in range(0, 120_001))


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        # One server answered.
        ("0.011", 11),
        ("0.000", 0),
        ("12.345", 12_345),
        (" 0.011 ", 11),
        # A retry (proxy_next_upstream): the sum of every server's time.
        ("0.002, 0.010", 12),
        ("0.002, 0.003, 0.010", 15),
        # An internal redirect to another upstream request: summed as well.
        ("0.002 : 0.010", 12),
        ("0.002, 0.003 : 0.010", 15),
        # A server that gave no response adds nothing; the others still count.
        ("-, 0.010", 10),
        ("0.004 : -", 4),
        # A log_format that does not quote the variable.
        (0.011, 11),
        (2, 2000),
    ],
)
def test_upstream_time_in_each_form_nginx_writes_is_summed_in_milliseconds(
    value: Any, ms: int
) -> None:
    assert upstream_ms(value) == ms
    request = parse_line(line(upstream_time=value))
    assert request is not None
    assert request.upstream_ms == ms


@pytest.mark.parametrize(
    "value",
    [
        # No upstream server answered.
        "-",
        "-, -",
        "- : -",
        # Empty (escape=json writes an unset variable as "") or not logged at all.
        "",
        None,
        # Junk: no upstream time, but the request is still counted (not unparsed).
        "abc",
        "0.01x",
        "0.002,,0.010",
        "0.002, abc",
        "0.002; 0.010",
        "-0.001",
        -0.001,
        "NaN",
        "inf",
        True,
        [0.011],
        {"time": 0.011},
    ],
)
def test_a_missing_or_unreadable_upstream_time_is_none_and_the_request_still_counts(
    value: Any,
) -> None:
    request = parse_line(line(upstream_time=value, status=502))

    assert upstream_ms(value) is None
    assert request is not None
    assert (request.colour, request.status, request.latency_ms) == ("green", 502, 12)
    assert request.upstream_ms is None


def test_every_millisecond_nginx_can_log_is_its_own_upstream_bucket() -> None:
    assert all(upstream_ms(f"{ms / 1000:.3f}") == ms for ms in range(0, 120_001))


def test_histogram_keys_are_strings_in_numeric_order() -> None:
    assert list(histogram({100: 1, 9: 2, 10: 3})) == ["9", "10", "100"]
    assert histogram({100: 1, 9: 2}) == {"9": 2, "100": 1}


def test_complete_lines_leave_the_unfinished_end() -> None:
    assert complete_lines(b"a\nb\nc") == (["a", "b"], b"c")
    assert complete_lines(b"a\n") == (["a"], b"")
    assert complete_lines(b"\n\n") == (["", ""], b"")
    assert complete_lines(b"no newline") == ([], b"no newline")
    # Bytes that are not UTF-8 are replaced, so the line is still read.
    assert complete_lines(b'{"uri":"/\xe9"}\n') == (['{"uri":"/\ufffd"}'], b"")


# --- counting ---------------------------------------------------------------------------


def test_lines_are_counted_per_colour_with_statuses_latency_bytes_and_routes() -> None:
    counted = tally_of(
        line(uri="/notes", request_time=0.012, sent=100),
        line(uri="/notes", request_time=0.011, sent=20),
        line(uri="/notes/new", status=502, request_time=0.030, sent=3),
        line(colour="blue", status=404, request_time=0.003, sent=7),
        line(colour="blue", status=500, request_time=0.003, sent=0),
    )

    assert counted["colours"] == {
        "blue": {
            "requests": 2,
            "errors": 1,
            "latency_ms": {"3": 2},
            "statuses": {"404": 1, "500": 1},
            "bytes": 7,
            "upstream_ms": {"11": 2},
            "no_upstream_time": 0,
            "routes": {"/notes": {"requests": 2, "errors": 1, "latency_ms": {"3": 2}}},
        },
        "green": {
            "requests": 3,
            "errors": 1,
            "latency_ms": {"11": 1, "12": 1, "30": 1},
            "statuses": {"200": 2, "502": 1},
            "bytes": 123,
            "upstream_ms": {"11": 3},
            "no_upstream_time": 0,
            "routes": {
                "/notes": {"requests": 2, "errors": 0, "latency_ms": {"11": 1, "12": 1}},
                "/notes/new": {"requests": 1, "errors": 1, "latency_ms": {"30": 1}},
            },
        },
    }
    assert (counted["lines"], counted["unparsed"], counted["unrouted"], counted["excluded"]) == (
        5,
        0,
        0,
        0,
    )


def test_upstream_times_are_counted_per_colour_beside_the_request_times() -> None:
    counted = tally_of(
        line(request_time=0.015, upstream_time="0.011"),
        line(request_time=0.020, upstream_time="0.011"),
        line(request_time=0.250, upstream_time="0.200, 0.040"),
        line(request_time=0.003, upstream_time="-", status=502),
        line(request_time=0.004, upstream_time="garbage"),
        line(colour="blue", request_time=0.009, upstream_time="0.008"),
        # Neither excluded nor unrouted lines count for a colour's upstream time.
        line(uri="/healthz", upstream_time="0.500"),
        line(upstream="", status=503, upstream_time=""),
        exclude=("/healthz",),
    )

    green, blue = counted["colours"]["green"], counted["colours"]["blue"]
    assert green["latency_ms"] == {"3": 1, "4": 1, "15": 1, "20": 1, "250": 1}
    assert green["upstream_ms"] == {"11": 2, "240": 1}
    assert green["no_upstream_time"] == 2
    assert (blue["upstream_ms"], blue["no_upstream_time"]) == ({"8": 1}, 0)
    # Every request of a colour has an upstream time or is counted without one.
    for stats in (green, blue):
        assert sum(stats["upstream_ms"].values()) + stats["no_upstream_time"] == stats["requests"]
    assert "upstream_ms" not in green["routes"]["/notes"]


def test_unrouted_excluded_and_skipped_lines_count_for_no_colour() -> None:
    counted = tally_of(
        line(),
        line(upstream="", status=503, colour="blue"),
        line(uri="/healthz"),
        line(uri="/healthz", upstream=""),
        line(uri="/metrics", colour="blue"),
        "garbage",
        line(status="x"),
        exclude=("/healthz", "/metrics"),
    )

    assert list(counted["colours"]) == ["green"]
    assert counted["colours"]["green"]["requests"] == 1
    assert (counted["unrouted"], counted["excluded"], counted["unparsed"]) == (1, 3, 2)
    assert counted["lines"] == 7


def test_exclusion_is_by_exact_path() -> None:
    counted = tally_of(line(uri="/healthz/deep"), line(uri="/health"), exclude=("/healthz",))

    assert counted["excluded"] == 0
    assert counted["colours"]["green"]["requests"] == 2


def test_a_colour_with_only_excluded_lines_is_not_listed() -> None:
    counted = tally_of(line(colour="blue", uri="/healthz"), line(), exclude=("/healthz",))

    assert list(counted["colours"]) == ["green"]


def routes(**requests: tuple[int, int, dict[int, int]]) -> dict[str, RouteStats]:
    built = {}
    for uri, (count, errors, latency) in requests.items():
        stats = RouteStats()
        stats.requests, stats.errors, stats.latency = count, errors, dict(latency)
        built[f"/{uri}"] = stats
    return built


def test_the_busiest_routes_are_kept_and_the_rest_merged_under_other() -> None:
    capped = cap_routes(
        routes(a=(5, 1, {10: 5}), b=(9, 0, {20: 9}), c=(2, 2, {10: 1, 30: 1}), d=(1, 0, {5: 1})),
        2,
    )

    assert capped == {
        "/b": {"requests": 9, "errors": 0, "latency_ms": {"20": 9}},
        "/a": {"requests": 5, "errors": 1, "latency_ms": {"10": 5}},
        "other": {"requests": 3, "errors": 2, "latency_ms": {"5": 1, "10": 1, "30": 1}},
    }


def test_routes_within_the_cap_get_no_other() -> None:
    assert list(cap_routes(routes(a=(1, 0, {1: 1}), b=(1, 0, {1: 1})), 2)) == ["/a", "/b"]


def test_equally_busy_routes_are_kept_by_name() -> None:
    capped = cap_routes(routes(b=(1, 0, {}), a=(1, 0, {}), c=(1, 0, {})), 1)

    assert list(capped) == ["/a", "other"]
    assert capped["other"]["requests"] == 2


def test_a_cap_of_zero_merges_every_route() -> None:
    assert cap_routes(routes(a=(2, 1, {3: 2}), b=(1, 0, {3: 1})), 0) == {
        "other": {"requests": 3, "errors": 1, "latency_ms": {"3": 3}}
    }


def test_a_route_called_other_joins_the_merged_rest() -> None:
    stats = routes(a=(5, 0, {1: 5}), c=(1, 1, {2: 1}), d=(1, 0, {3: 1}))
    stats["other"] = routes(o=(3, 0, {1: 3}))["/o"]

    capped = cap_routes(stats, 2)

    assert capped == {
        "/a": {"requests": 5, "errors": 0, "latency_ms": {"1": 5}},
        "other": {"requests": 5, "errors": 1, "latency_ms": {"1": 3, "2": 1, "3": 1}},
    }


def test_max_routes_is_counted_through_the_tally() -> None:
    counted = tally_of(line(uri="/a"), line(uri="/a"), line(uri="/b"), line(uri="/c"), max_routes=1)

    assert counted["colours"]["green"]["routes"] == {
        "/a": {"requests": 2, "errors": 0, "latency_ms": {"12": 2}},
        "other": {"requests": 2, "errors": 0, "latency_ms": {"12": 2}},
    }


@pytest.mark.parametrize("value", [-1, True, "5", None])
def test_max_routes_must_be_zero_or_more(value: Any) -> None:
    with pytest.raises(NginxRequestsError, match="max_routes"):
        validate_max_routes(value)


def test_the_window_never_has_a_negative_length() -> None:
    assert window(10.0, 12.5) == {"since": 10.0, "until": 12.5, "seconds": 2.5}
    assert window(10.0, 9.0)["seconds"] == 0.0


# --- marks and where to read ------------------------------------------------------------


def test_a_mark_is_read_back_with_numbers_given_as_strings() -> None:
    given = {"path": LOG, "inode": "12", "offset": "340", "at": "1733500000.5"}

    assert parse_mark(given, LOG) == Mark(LOG, 12, 340, 1733500000.5)
    assert parse_mark({"path": LOG + "/", "inode": None, "offset": 0, "at": 1}, LOG).inode is None


@pytest.mark.parametrize(
    ("since", "message"),
    [
        (None, "state=read needs since.*run nginx_requests with state=mark first"),
        ("a mark", "it is a str, not a mapping"),
        ({"path": LOG, "offset": 0, "at": 1}, "it has no inode"),
        ({"path": "/var/log/other.log", "inode": 1, "offset": 0, "at": 1}, "not of " + LOG),
        ({"path": LOG, "inode": 1, "offset": -1, "at": 1}, "offset -1"),
        ({"path": LOG, "inode": 1, "offset": 1.5, "at": 1}, "offset 1.5"),
        ({"path": LOG, "inode": "x", "offset": 0, "at": 1}, "inode 'x'"),
        ({"path": LOG, "inode": None, "offset": 10, "at": 1}, "inode null"),
        ({"path": LOG, "inode": 1, "offset": 0, "at": "soon"}, "at 'soon'"),
    ],
)
def test_a_bad_mark_is_refused_naming_the_fix(since: Any, message: str) -> None:
    with pytest.raises(NginxRequestsError, match=message):
        parse_mark(since, LOG)


MARK = Mark(LOG, inode=7, offset=100, at=1.0)


@pytest.mark.parametrize(
    ("mark", "current", "rotated", "expected"),
    [
        # Nothing happened to the file: on from the mark.
        (MARK, FileState(7, 250), None, ReadPlan(current_start=100)),
        (MARK, FileState(7, 100), None, ReadPlan(current_start=100)),
        # No file at the mark: all of the file there now is new, or still nothing.
        (Mark(LOG, None, 0, 1.0), FileState(9, 50), None, ReadPlan(current_start=0)),
        (Mark(LOG, None, 0, 1.0), None, None, ReadPlan(current_start=None)),
        # Rotated: the rest of the old file, then the new one from its start.
        (MARK, FileState(9, 40), FileState(7, 300), ReadPlan(current_start=0, rotated_start=100)),
        (MARK, None, FileState(7, 300), ReadPlan(current_start=None, rotated_start=100)),
    ],
)
def test_where_the_lines_after_a_mark_are(
    mark: Mark, current: FileState | None, rotated: FileState | None, expected: ReadPlan
) -> None:
    plan = plan_read(mark, current, rotated)

    assert plan == expected
    assert not plan.lost
    assert plan.rotated == (expected.rotated_start is not None)


@pytest.mark.parametrize(
    ("current", "rotated", "start", "reason"),
    [
        # copytruncate: same inode, smaller, or rewritten past the mark.
        (FileState(7, 40), None, 0, "truncated"),
        (FileState(7, 400, line_start=False), None, 0, "truncated"),
        # Rotated out of reach, or deleted.
        (FileState(9, 40), None, 0, "no rotated file"),
        (None, None, None, "no rotated file"),
        (FileState(9, 40), FileState(7, 50), 0, "no longer holds"),
        (FileState(9, 40), FileState(7, 300, line_start=False), 0, "no longer holds"),
    ],
)
def test_a_mark_that_cannot_be_followed_loses_the_window(
    current: FileState | None, rotated: FileState | None, start: int | None, reason: str
) -> None:
    plan = plan_read(MARK, current, rotated)

    assert plan.lost
    assert not plan.rotated
    assert plan.current_start == start
    assert reason in (plan.reason or "")


def test_rotated_names_are_dot_one_then_dated_ones() -> None:
    names = ["app.log", "app.log.2.gz", "app.log-20250102", "app.log.1", "app.log-20250101", "x"]

    assert rotated_candidates("/var/log/app.log", names) == [
        "/var/log/app.log.1",
        "/var/log/app.log-20250101",
        "/var/log/app.log-20250102",
    ]
    assert rotated_candidates("/var/log/app.log", ["app.log", "other.log.1"]) == []


# --- the module on real files -----------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    """Ansible collects warnings per process; each in-process run starts without any."""
    ansible_warnings._global_warnings.clear()


def warnings_of(result: dict[str, Any]) -> list[str]:
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "app.requests.log"


def append(path: Path, *lines: str) -> None:
    with path.open("a") as file:
        file.write("".join(lines))


def mark(run_module, path: Path, **options: Any) -> dict[str, Any]:
    result = run_module(nginx_requests.main, {"path": str(path), "state": "mark", **options})
    assert not result["failed"], result
    assert result["changed"] is False
    return result["mark"]


def read(run_module, path: Path, since: Any, **options: Any) -> dict[str, Any]:
    args = {"path": str(path), "state": "read", "since": since, **options}
    check_mode = args.pop("check_mode", False)
    result = run_module(nginx_requests.main, args, check_mode=check_mode)
    assert not result["failed"], result
    assert result["changed"] is False
    # A window that lost lines says why; a whole one warns of nothing.
    assert bool(warnings_of(result)) == result["lost"], warnings_of(result)
    return result


def requests_of(result: dict[str, Any]) -> dict[str, int]:
    return {colour: stats["requests"] for colour, stats in result["colours"].items()}


def test_a_read_counts_the_lines_appended_since_the_mark(run_module, log: Path) -> None:
    append(log, line(colour="blue"), line(colour="blue"))
    marked = mark(run_module, log)
    append(log, line(), line(status=502, request_time=0.2), line(colour="blue", uri="/a"))

    result = read(run_module, log, marked)

    assert marked == {
        "path": str(log),
        "inode": log.stat().st_ino,
        "offset": 2 * len(line(colour="blue")),
        "at": marked["at"],
    }
    assert requests_of(result) == {"blue": 1, "green": 2}
    assert result["colours"]["green"]["statuses"] == {"200": 1, "502": 1}
    assert result["colours"]["green"]["latency_ms"] == {"12": 1, "200": 1}
    assert result["colours"]["green"]["upstream_ms"] == {"11": 2}
    assert result["colours"]["green"]["no_upstream_time"] == 0
    assert result["colours"]["green"]["errors"] == 1
    assert result["colours"]["blue"]["routes"] == {
        "/a": {"requests": 1, "errors": 0, "latency_ms": {"12": 1}}
    }
    assert (result["lines"], result["unparsed"], result["rotated"], result["lost"]) == (
        3,
        0,
        False,
        False,
    )
    assert result["mark"] == {
        "path": str(log),
        "inode": log.stat().st_ino,
        "offset": log.stat().st_size,
        "at": result["window"]["until"],
    }
    assert result["window"]["since"] == marked["at"]
    assert result["window"]["seconds"] == pytest.approx(result["window"]["until"] - marked["at"])
    assert result["window"]["seconds"] >= 0


def test_chained_windows_count_each_line_once(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    append(log, line(), line())
    first = read(run_module, log, marked)
    append(log, line(colour="blue"))
    second = read(run_module, log, first["mark"])
    third = read(run_module, log, second["mark"])

    assert requests_of(first) == {"green": 2}
    assert requests_of(second) == {"blue": 1}
    assert (third["lines"], third["colours"]) == (0, {})
    assert third["mark"]["offset"] == log.stat().st_size
    assert second["window"]["since"] == first["window"]["until"]


def test_a_line_being_written_is_left_for_the_next_read(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    whole = line(uri="/done")
    half = line(uri="/later")
    append(log, whole, half[:20])

    first = read(run_module, log, marked)
    append(log, half[20:])
    second = read(run_module, log, first["mark"])

    assert (first["lines"], first["unparsed"], first["mark"]["offset"]) == (1, 0, len(whole))
    assert list(first["colours"]["green"]["routes"]) == ["/done"]
    assert (second["lines"], second["unparsed"]) == (1, 0)
    assert list(second["colours"]["green"]["routes"]) == ["/later"]


def test_a_mark_taken_while_a_line_is_written_starts_before_that_line(
    run_module, log: Path
) -> None:
    whole = line(uri="/before")
    append(log, whole, line(uri="/during")[:30])

    marked = mark(run_module, log)
    append(log, line(uri="/during")[30:])
    result = read(run_module, log, marked)

    assert marked["offset"] == len(whole)
    assert (result["lines"], result["unparsed"]) == (1, 0)
    assert list(result["colours"]["green"]["routes"]) == ["/during"]


def test_lines_across_read_chunks_are_counted_once(
    run_module, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked = mark(run_module, log)
    lines = [line(uri=f"/r{i}", request_time=i / 1000) for i in range(40)]
    append(log, *lines, "garbage\n", line()[:15])
    monkeypatch.setattr(nginx_requests, "READ_CHUNK", 7)

    result = read(run_module, log, marked)

    assert result["colours"]["green"]["requests"] == 40
    assert result["colours"]["green"]["latency_ms"] == {str(i): 1 for i in range(40)}
    assert (result["lines"], result["unparsed"]) == (41, 1)
    assert result["mark"]["offset"] == log.stat().st_size - 15


def test_unrouted_excluded_and_skipped_lines_through_the_module(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    append(
        log,
        line(),
        line(upstream="", status=503),
        line(uri="/healthz"),
        line(uri="/metrics", upstream=""),
        "not json at all\n",
        "\n",
        line(status=None),
    )

    result = read(run_module, log, marked, exclude_routes=["/healthz", "/metrics"])

    assert requests_of(result) == {"green": 1}
    assert (result["unrouted"], result["excluded"], result["unparsed"], result["lines"]) == (
        1,
        2,
        3,
        7,
    )


def test_max_routes_caps_each_colour_through_the_module(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    append(log, line(uri="/a"), line(uri="/a"), line(uri="/b"), line(uri="/c", colour="blue"))

    result = read(run_module, log, marked, max_routes=1)

    assert list(result["colours"]["green"]["routes"]) == ["/a", "other"]
    assert list(result["colours"]["blue"]["routes"]) == ["/c"]


def test_check_mode_reads_the_same(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    append(log, line(), line(colour="blue"))

    checked = read(run_module, log, marked, check_mode=True)
    real = read(run_module, log, marked)

    assert requests_of(checked) == requests_of(real) == {"blue": 1, "green": 1}
    assert checked["mark"]["offset"] == real["mark"]["offset"]


def test_a_rotated_log_is_read_to_its_end_then_the_new_one(run_module, log: Path) -> None:
    append(log, line(uri="/old"))
    marked = mark(run_module, log)
    append(log, line(uri="/before-rotation"), line(uri="/before-rotation"))
    log.rename(f"{log}.1")
    append(log, line(uri="/after-rotation", colour="blue"))

    result = read(run_module, log, marked)

    assert (result["rotated"], result["lost"]) == (True, False)
    assert requests_of(result) == {"blue": 1, "green": 2}
    assert "/old" not in result["colours"]["green"]["routes"]
    assert result["mark"]["inode"] == log.stat().st_ino != marked["inode"]
    assert result["mark"]["offset"] == log.stat().st_size
    # The next window goes on in the new file only.
    append(log, line(uri="/next"))
    after = read(run_module, log, result["mark"])
    assert (after["rotated"], after["lost"], requests_of(after)) == (False, False, {"green": 1})


def test_a_log_rotated_with_a_date_is_found_too(run_module, log: Path) -> None:
    append(log, line(uri="/old"))
    marked = mark(run_module, log)
    append(log, line())
    (log.parent / f"{log.name}.1").write_text(line(colour="blue") * 5)  # an older rotation
    log.rename(f"{log}-20250101")
    append(log, line(), line())

    result = read(run_module, log, marked)

    assert (result["rotated"], result["lost"], requests_of(result)) == (True, False, {"green": 3})


def test_a_rotated_log_without_a_new_one_yet_is_read(run_module, log: Path) -> None:
    append(log, line())
    marked = mark(run_module, log)
    append(log, line(), line()[:10])
    log.rename(f"{log}.1")

    result = read(run_module, log, marked)

    # The cut line at the end of the rotated file will never be finished: unparsed.
    assert (result["rotated"], result["lost"], requests_of(result)) == (True, False, {"green": 1})
    assert (result["lines"], result["unparsed"]) == (2, 1)
    assert (result["mark"]["inode"], result["mark"]["offset"]) == (None, 0)


def test_a_log_rotated_out_of_reach_is_lost(run_module, log: Path) -> None:
    append(log, line(uri="/old"))
    marked = mark(run_module, log)
    append(log, line(colour="blue"))
    log.rename(f"{log}.2")
    append(log, line())

    result = read(run_module, log, marked)

    assert (result["rotated"], result["lost"], requests_of(result)) == (False, True, {"green": 1})
    [warning] = warnings_of(result)
    assert "the window is incomplete" in warning
    assert "no rotated file beside it has the marked inode" in warning


def test_copytruncate_is_read_from_the_start_and_lost(run_module, log: Path) -> None:
    append(log, line(colour="blue"), line(colour="blue"))
    marked = mark(run_module, log)
    append(log, line(colour="blue"))
    inode = log.stat().st_ino
    with log.open("r+") as file:
        file.truncate(0)
    append(log, line())

    result = read(run_module, log, marked)

    assert log.stat().st_ino == inode
    assert (result["rotated"], result["lost"], requests_of(result)) == (False, True, {"green": 1})
    assert result["mark"] == {
        "path": str(log),
        "inode": inode,
        "offset": len(line()),
        "at": result["window"]["until"],
    }


def test_copytruncate_written_past_the_mark_again_is_noticed(run_module, log: Path) -> None:
    append(log, line())
    marked = mark(run_module, log)
    with log.open("r+") as file:
        file.truncate(0)
    # Longer than the mark, and no line ends just before the marked offset.
    append(log, line(uri="/" + "x" * 40), line(uri="/y"))

    result = read(run_module, log, marked)

    assert result["lost"] is True
    assert requests_of(result) == {"green": 2}
    assert result["unparsed"] == 0


def test_a_log_that_does_not_exist_yet_is_an_empty_window(run_module, log: Path) -> None:
    marked = mark(run_module, log)

    empty = read(run_module, log, marked)
    append(log, line(), line(colour="blue"))
    created = read(run_module, log, empty["mark"])

    assert marked["inode"] is None and marked["offset"] == 0
    assert (empty["lines"], empty["colours"], empty["lost"], empty["rotated"]) == (
        0,
        {},
        False,
        False,
    )
    assert empty["mark"] == {
        "path": str(log),
        "inode": None,
        "offset": 0,
        "at": empty["window"]["until"],
    }
    assert (created["lost"], requests_of(created)) == (False, {"blue": 1, "green": 1})


def test_a_log_removed_since_the_mark_is_lost(run_module, log: Path) -> None:
    append(log, line())
    marked = mark(run_module, log)
    append(log, line())
    log.unlink()

    result = read(run_module, log, marked)

    assert (result["lost"], result["rotated"], result["lines"]) == (True, False, 0)
    assert (result["mark"]["inode"], result["mark"]["offset"]) == (None, 0)


def test_a_read_without_since_fails_naming_the_fix(run_module, log: Path) -> None:
    append(log, line())
    before = log.read_bytes()

    result = run_module(nginx_requests.main, {"path": str(log), "state": "read"})

    assert result["failed"] and result["changed"] is False
    assert "state=read needs since" in result["msg"]
    assert "state=mark first" in result["msg"]
    assert log.read_bytes() == before


def test_a_mark_of_another_log_is_refused(run_module, log: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.log"
    append(other, line())
    marked = mark(run_module, other)

    result = run_module(nginx_requests.main, {"path": str(log), "state": "read", "since": marked})

    assert result["failed"]
    assert f"since is a mark of '{other}', not of {log}" in result["msg"]
    assert not log.exists()


def test_a_directory_is_no_log(run_module, tmp_path: Path) -> None:
    result = run_module(nginx_requests.main, {"path": str(tmp_path), "state": "mark"})

    assert result["failed"]
    assert "is not a regular file" in result["msg"]


def test_a_hundred_thousand_lines_are_read_in_one_window(run_module, log: Path) -> None:
    marked = mark(run_module, log)
    lines = [line(colour="blue"), line(), line(status=503), line(uri="/healthz")]
    append(log, *(lines * 25_000))

    result = read(run_module, log, marked, exclude_routes=["/healthz"])

    assert requests_of(result) == {"blue": 25_000, "green": 50_000}
    assert result["colours"]["green"]["errors"] == 25_000
    assert (result["excluded"], result["lines"]) == (25_000, 100_000)
    assert math.isclose(result["window"]["seconds"], result["window"]["until"] - marked["at"])
    assert os.path.getsize(log) == result["mark"]["offset"]


def test_named_routes_add_up_what_each_matches_whatever_their_traffic() -> None:
    from ansible.module_utils.nginx_requests import (
        ColourStats,
        NginxRequestsError,
        RouteStats,
        route_matches,
        validate_named_routes,
    )

    assert route_matches("/reports/2024", "/reports/*")
    assert not route_matches("/report", "/reports/*")
    assert route_matches("/generate", "/generate") and not route_matches("/generate/x", "/generate")
    stats = ColourStats()
    for uri, ms, status in [("/reports/a", 900, 200), ("/reports/b", 1200, 500), ("/", 5, 200)]:
        route = stats.routes.setdefault(uri, RouteStats())
        route.requests += 1
        route.errors += status >= 500
        route.latency[ms] = route.latency.get(ms, 0) + 1

    named = stats.as_dict(max_routes=0, named_routes=["/reports/*", "/reports/a"])["named_routes"]
    # A route counts in the first pattern that matches it only.
    assert named["/reports/*"] == {"requests": 2, "errors": 1, "latency_ms": {"900": 1, "1200": 1}}
    assert named["/reports/a"] == {"requests": 0, "errors": 0, "latency_ms": {}}
    with pytest.raises(NginxRequestsError, match="give a path"):
        validate_named_routes(["reports"])
    with pytest.raises(NginxRequestsError, match="twice"):
        validate_named_routes(["/a", "/a"])
